"""Billing searched, not replayed: hypothesis draws scenarios of requests through two live gateways
over one real Postgres and checks the money after each.

Each scenario: a fresh tenant with a random markup (0 to 1, six decimals) and a random hard daily
budget; a handful of requests, each streamed or not, with `max_tokens` absent or random, pinned to one
of the three front ends or left to the planner, sent to either gateway; some meet an upstream failure
before or during the answer, some clients leave mid-stream, and sometimes Postgres goes away for the
second gateway. Invariants after each scenario, once every row has landed:
  - billed spend never passes the hard budget;
  - one row per attempt, numbered without gaps;
  - every row's billed amount is its provider cost plus markup under the stated rounding;
  - the rows' sum equals /v1/usage, the tenant's export and the daily rollup;
  - what each answer said it cost (usage.cost and x-switchyard-cost-usd) is the sum of its rows.
The number of scenarios run and the worst overshoot seen are printed (run with -s to read them).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import time
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveGateway
from tests.reliability.fault_control import arm
from tests.reliability.tcp_proxy import CuttableProxy
from tests.support import acreate_tenant_with_key, fetch

MODEL = "moonshotai/Kimi-K2.5"
ROWS = "SELECT * FROM usage_events WHERE tenant_id = $1 ORDER BY request_id, attempt"
FAULTS = {
    "none": None,
    "5xx_before": "status:503",
    "drop_mid_stream": "drop_after_chunks:3",
    "error_event_mid_stream": "error_event_after_chunks:2",
    "end_after_finish": "end_after_finish",
}
RECORD = {"scenarios": 0, "requests": 0, "refused_for_budget": 0, "unavailable": 0,
          "worst_overshoot": Decimal(0)}
# More scenarios for a longer search: SWITCHYARD_PROPERTY_EXAMPLES=300 pytest -s tests/money/...
EXAMPLES = int(os.environ.get("SWITCHYARD_PROPERTY_EXAMPLES", "25"))


@dataclass
class World:
    standins: object
    database_url: str
    proxy: CuttableProxy
    a: LiveGateway
    b: LiveGateway  # reaches Postgres through the proxy: the one whose database goes away


@pytest.fixture(scope="module")
def world(standins, database_url):
    parts = urlsplit(database_url)
    proxy = CuttableProxy(parts.hostname, parts.port or 5432).start()
    proxied = database_url.replace(f"{parts.hostname}:{parts.port or 5432}", f"127.0.0.1:{proxy.port}")
    a = LiveGateway(standins, database_url)
    b = LiveGateway(standins, proxied)
    yield World(standins, database_url, proxy, a, b)
    a.stop()
    b.stop()
    proxy.stop()
    print(f"\nbilling properties: {RECORD['scenarios']} scenarios, {RECORD['requests']} requests "
          f"({RECORD['refused_for_budget']} refused by the hard budget, {RECORD['unavailable']} answered 503 "
          f"while it could not be checked), worst overshoot of a hard budget: {RECORD['worst_overshoot']} USD")


@dataclass
class Call:
    gateway: str  # a | b
    stream: bool
    max_tokens: int | None
    front_end: str | None
    fault: str
    leave_after: int | None  # a streaming client that disconnects after this many events
    outage: bool  # Postgres is away (for gateway b) during this call


calls = st.builds(
    Call,
    gateway=st.sampled_from(["a", "b"]),
    stream=st.booleans(),
    max_tokens=st.none() | st.integers(1, 600),
    front_end=st.sampled_from([None, "baseten", "xpay", "orthogonal"]),
    fault=st.sampled_from(sorted(FAULTS)),
    leave_after=st.none() | st.integers(0, 4),
    outage=st.booleans(),
)


@dataclass
class Told:
    """What the client was told about one request."""

    request_id: str | None
    cost: Decimal | None = None
    attempts: int | None = None
    status: int = 0
    errors: list[str] = field(default_factory=list)


def _body(call: Call) -> dict:
    body: dict = {"model": MODEL, "messages": [{"role": "user", "content": f"Tell me about {uuid.uuid4().hex}."}]}
    if call.max_tokens is not None:
        body["max_tokens"] = call.max_tokens
    if call.front_end is not None:
        body["provider"] = {"only": [call.front_end]}
    if call.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _send(url: str, key: str, call: Call) -> Told:
    headers = {"authorization": f"Bearer {key}"}
    body = _body(call)
    with httpx.Client(timeout=30) as client:
        if not call.stream:
            r = client.post(url + "/v1/chat/completions", json=body, headers=headers)
            told = Told(r.headers.get("x-request-id"), status=r.status_code)
            if r.status_code == 200:
                told.cost = Decimal(r.headers["x-switchyard-cost-usd"])
                told.attempts = int(r.headers["x-switchyard-attempts"])
                assert Decimal(repr(r.json()["usage"]["cost"])) == told.cost
            return told
        with client.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
            told = Told(r.headers.get("x-request-id"), status=r.status_code)
            if r.status_code != 200:
                r.read()
                return told
            told.attempts = int(r.headers["x-switchyard-attempts"])
            seen = 0
            for line in r.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                seen += 1
                if "error" in event:
                    told.errors.append(event["error"]["code"])
                elif not event.get("choices") and event.get("usage"):
                    told.cost = Decimal(repr(event["usage"]["cost"]))
                if call.leave_after is not None and seen > call.leave_after:
                    return told  # the client goes away mid-stream
            return told


async def _settled_rows(world: World, tenant_id: uuid.UUID) -> list:
    """The tenant's rows once nothing is still on its way (a row leaves its writer's queue only once
    Postgres holds it)."""
    deadline = time.monotonic() + 40
    last: list = []
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        rows = await fetch(world.database_url, ROWS, tenant_id)
        pending = world.a.runtime.ledger.depth + world.b.runtime.ledger.depth
        if len(rows) != len(last):
            last, stable_since = rows, time.monotonic()
        elif pending == 0 and time.monotonic() - stable_since > 0.6:
            return rows
        await asyncio.sleep(0.1)
    return last


def _sum(rows: list, column: str = "billed_usd") -> Decimal:
    return sum((r[column] for r in rows), Decimal(0))


@pytest.mark.timeout(60 + EXAMPLES * 12)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(markup=st.decimals(min_value=0, max_value=1, places=6), limit_cents=st.integers(1, 40),
       plan=st.lists(calls, min_size=1, max_size=6))
def test_billing_holds_whatever_happens(world, markup, limit_cents, plan):
    tenant = asyncio.run(acreate_tenant_with_key(world.database_url, markup=str(markup)))
    limit = Decimal(limit_cents) / 10_000  # $0.0001 to $0.004: a few requests' worth
    asyncio.run(fetch(world.database_url, "INSERT INTO budgets (id, tenant_id, period, limit_usd, hard) "
                      "VALUES ($1, $2, 'day', $3, true)", uuid.uuid4(), tenant.tenant_id, limit))
    told: list[Told] = []
    try:
        for call in plan:
            gateway = world.a if call.gateway == "a" else world.b
            spec = FAULTS[call.fault]
            if spec is not None:
                arm(world.standins, spec, model=MODEL)
            if call.outage and call.gateway == "b":
                world.proxy.cut()
            try:
                told.append(_send(gateway.url, tenant.key, call))
            finally:
                world.proxy.restore()
                httpx.post(world.standins.servers["baseten"].url + "/__control/reset")
    finally:
        world.proxy.restore()
    rows = asyncio.run(_settled_rows(world, tenant.tenant_id))
    RECORD["scenarios"] += 1
    RECORD["requests"] += len(plan)
    RECORD["refused_for_budget"] += sum(1 for t in told if t.status == 402)
    RECORD["unavailable"] += sum(1 for t in told if t.status == 503)
    spent = _sum(rows)
    RECORD["worst_overshoot"] = max(RECORD["worst_overshoot"], spent - limit)
    # A hard budget is never passed.
    assert spent <= limit, (spent, limit)
    by_request: dict[str, list] = {}
    for row in rows:
        by_request.setdefault(row["request_id"], []).append(row)
        # Billed = provider cost plus markup, rounded half-up to the ledger's ten places.
        marked_up = row["provider_cost_usd"] * (1 + markup)
        assert row["billed_usd"] == marked_up.quantize(Decimal("1E-10"), rounding=ROUND_HALF_UP)
    for request_rows in by_request.values():
        # One row per attempt, numbered without gaps.
        assert [r["attempt"] for r in request_rows] == list(range(1, len(request_rows) + 1))
    for answer in told:
        mine = by_request.get(answer.request_id or "", [])
        if answer.attempts is not None:
            assert len(mine) == answer.attempts
        if answer.cost is not None:
            # What the client was told is the sum of what its attempts were billed.
            assert answer.cost == _sum(mine)
    headers = {"authorization": f"Bearer {tenant.key}"}
    usage = httpx.get(world.a.url + "/v1/usage", headers=headers, timeout=20).json()
    assert Decimal(usage["total"]["cost_usd"]) == spent
    export = httpx.get(world.a.url + "/v1/usage/export", params={"format": "csv"}, headers=headers, timeout=20)
    exported = list(csv.DictReader(io.StringIO(export.text)))
    assert sum((Decimal(r["billed_usd"]) for r in exported), Decimal(0)) == spent and len(exported) == len(rows)
    daily = asyncio.run(fetch(world.database_url, "SELECT COALESCE(sum(billed_usd), 0) AS s FROM usage_daily "
                              "WHERE tenant_id = $1", tenant.tenant_id))
    assert daily[0]["s"] == spent
