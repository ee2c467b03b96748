"""Every upstream fault through the live gateway with the openai client: it either falls back to
another route or ends in a clean OpenAI error, and the ledger holds exactly one row per attempt."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import openai
import pytest

from tests.conftest import LiveGateway
from tests.reliability.fault_control import arm, closed_port, ledger_rows

HELLO = [{"role": "user", "content": "Say hello."}]
ONLY_BASETEN = "deepseek-ai/DeepSeek-V4-Flash-0731"  # no other route: the failure reaches the client
FALLBACK = "openai/gpt-oss-120b"  # Baseten first, then xpay and Orthogonal
STREAM_MODES = pytest.mark.parametrize("stream", [False, True], ids=["sync", "stream"])


@dataclass
class Outcome:
    status: int
    headers: httpx.Headers
    chunks: int  # stream chunks received before the end
    error: openai.APIError | None  # an error answer, or an error event inside the stream

    @property
    def request_id(self) -> str:
        return self.headers["x-request-id"]

    @property
    def code(self) -> str | None:
        body = self.error.body if self.error is not None else None
        return body.get("code") if isinstance(body, dict) else None


def call(client: openai.OpenAI, model: str, *, stream: bool) -> Outcome:
    try:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=HELLO, stream=stream)
    except openai.APIStatusError as exc:
        return Outcome(exc.status_code, exc.response.headers, 0, exc)
    chunks, error = 0, None
    if stream:
        try:
            for _ in raw.parse():
                chunks += 1
        except openai.APIError as exc:
            error = exc
    else:
        assert raw.parse().choices[0].message.content
    return Outcome(raw.status_code, raw.headers, chunks, error)


def client_for(gateway: LiveGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=30)


def assert_clean_error(outcome: Outcome, status: int, code: str) -> None:
    assert outcome.status == status, (outcome.status, outcome.error)
    assert isinstance(outcome.error, openai.APIStatusError)
    body = outcome.error.body
    assert set(body) == {"message", "type", "param", "code"}, body
    assert body["code"] == code, body
    assert body["type"] == ("rate_limit_error" if status == 429 else "server_error"), body


def assert_error_event(outcome: Outcome, code: str) -> None:
    """Headers and some chunks went out, then the stream ended with an OpenAI error event."""
    assert outcome.status == 200
    assert outcome.chunks >= 1
    assert outcome.error is not None and not isinstance(outcome.error, openai.APIStatusError)
    assert outcome.code == code
    assert outcome.headers["x-switchyard-attempts"] == "1"


def assert_fell_back(outcome: Outcome) -> None:
    assert outcome.status == 200 and outcome.error is None, outcome.error
    assert int(outcome.headers["x-switchyard-attempts"]) >= 2
    assert not outcome.headers["x-switchyard-route"].startswith("baseten:")


def assert_ledger(gateway: LiveGateway, outcome: Outcome, expected: list[tuple[str, str | None, int | None]]):
    """Exactly one row per attempt, in order: (status, error_code, upstream http_status)."""
    rows = ledger_rows(gateway.database_url, outcome.request_id, len(expected))
    got = [(r["status"], r["error_code"], r["http_status"]) for r in rows]
    assert got == expected
    assert [r["attempt"] for r in rows] == list(range(1, len(expected) + 1))
    return rows


# ---- HTTP error answers from Baseten ------------------------------------------------------------

STATUS_FAULTS = [
    # fault, client status, client code, ledger error_code
    ("status:429:string", 429, "upstream_rate_limited", "rate_limited"),
    ("status:500:object", 502, "upstream_error", "upstream_server"),
    ("status:502:string", 502, "upstream_error", "upstream_server"),
    ("status:503:bare", 502, "upstream_error", "upstream_server"),
    ("status:504:string", 502, "upstream_error", "upstream_server"),
]


STATUS_CASES = pytest.mark.parametrize(("spec", "status", "code", "error_code"), STATUS_FAULTS,
                                       ids=[f[0] for f in STATUS_FAULTS])


@STREAM_MODES
@STATUS_CASES
def test_status_fault_without_another_route_is_a_clean_error(client, gateway, standins, stream, spec, status,
                                                             code, error_code):
    arm(standins, spec, model=ONLY_BASETEN)
    outcome = call(client, ONLY_BASETEN, stream=stream)
    assert_clean_error(outcome, status, code)
    upstream_status = int(spec.split(":")[1])
    assert_ledger(gateway, outcome, [("error", error_code, upstream_status)])


@STREAM_MODES
@STATUS_CASES
def test_status_fault_falls_back_to_another_route(client, gateway, standins, stream, spec, status, code,
                                                  error_code):
    arm(standins, spec, model=FALLBACK)
    outcome = call(client, FALLBACK, stream=stream)
    assert_fell_back(outcome)
    upstream_status = int(spec.split(":")[1])
    assert_ledger(gateway, outcome, [("error", error_code, upstream_status), ("ok", None, None)])


def test_upstream_retry_after_reaches_the_client(client, gateway, standins):
    arm(standins, "status:429:string,retry_after:7", model=ONLY_BASETEN)
    outcome = call(client, ONLY_BASETEN, stream=False)
    assert_clean_error(outcome, 429, "upstream_rate_limited")
    assert outcome.headers["retry-after"] == "7"
    assert_ledger(gateway, outcome, [("error", "rate_limited", 429)])


# ---- the connection itself fails ------------------------------------------------------------------


@pytest.fixture(scope="module")
def unreachable(standins, database_url):
    gw = LiveGateway(standins, database_url, BASETEN_BASE_URL=f"http://127.0.0.1:{closed_port()}/v1")
    yield gw
    gw.stop()


@pytest.fixture
def unreachable_client(unreachable, tenant):
    c = client_for(unreachable, tenant.key)
    yield c
    c.close()
    unreachable.runtime.health.reset()  # the failures must not open the circuit for the next test


@STREAM_MODES
def test_connect_failure_without_another_route_is_a_clean_5xx(unreachable, unreachable_client, stream):
    outcome = call(unreachable_client, ONLY_BASETEN, stream=stream)
    assert outcome.status >= 500 and isinstance(outcome.error, openai.APIStatusError)
    assert set(outcome.error.body) == {"message", "type", "param", "code"}
    assert outcome.error.body["type"] == "server_error"
    [row] = assert_ledger(unreachable, outcome, [("error", row_code(unreachable, outcome), None)])
    assert row["completion_tokens"] == 0 and row["provider_cost_usd"] == 0


@STREAM_MODES
def test_connect_failure_falls_back(unreachable, unreachable_client, stream):
    outcome = call(unreachable_client, FALLBACK, stream=stream)
    assert_fell_back(outcome)
    assert_ledger(unreachable, outcome, [("error", row_code(unreachable, outcome), None), ("ok", None, None)])


@STREAM_MODES
def test_connect_failure_is_reported_as_a_connect_failure(unreachable, unreachable_client, stream):
    outcome = call(unreachable_client, ONLY_BASETEN, stream=stream)
    assert_clean_error(outcome, 502, "upstream_connect_failed")
    assert_ledger(unreachable, outcome, [("error", "connect", None)])


def row_code(gateway: LiveGateway, outcome: Outcome) -> str:
    """The first attempt's error code as metered, for tests that only need it to be an upstream failure."""
    [first, *_] = ledger_rows(gateway.database_url, outcome.request_id, 1)
    assert first["error_code"] in {"connect", "timeout"}
    return first["error_code"]


# ---- Baseten is slow or silent ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def impatient(standins, database_url):
    gw = LiveGateway(standins, database_url, UPSTREAM_FIRST_BYTE_TIMEOUT="1", UPSTREAM_TOTAL_TIMEOUT="3")
    yield gw
    gw.stop()


@pytest.fixture
def impatient_client(impatient, tenant, standins):
    c = client_for(impatient, tenant.key)
    yield c
    c.close()
    impatient.runtime.health.reset()


SILENCES = ["delay_first_byte_ms:2500", "timeout"]  # slower than the 1 s first-byte limit; no answer at all


@STREAM_MODES
@pytest.mark.parametrize("spec", SILENCES)
def test_silence_without_another_route_is_a_504(impatient, impatient_client, standins, stream, spec):
    arm(standins, spec, model=ONLY_BASETEN)
    outcome = call(impatient_client, ONLY_BASETEN, stream=stream)
    assert_clean_error(outcome, 504, "upstream_timeout")
    assert_ledger(impatient, outcome, [("error", "timeout", None)])


@STREAM_MODES
def test_a_hanging_route_falls_back(impatient, impatient_client, standins, stream):
    arm(standins, "timeout", model=FALLBACK)
    outcome = call(impatient_client, FALLBACK, stream=stream)
    assert_fell_back(outcome)
    assert_ledger(impatient, outcome, [("error", "timeout", None), ("ok", None, None)])


# ---- the answer breaks before any of it reached the client ---------------------------------------

EARLY_BREAKS = [
    # fault, stream, client code, ledger error_code, ledger http_status
    ("drop_after_chunks:0", True, "upstream_protocol_error", "protocol", None),
    ("error_event_after_chunks:0", True, "upstream_stream_error", "stream_error", None),
    ("malformed_chunk:0", True, "upstream_protocol_error", "protocol", None),
    ("malformed_chunk", False, "upstream_protocol_error", "protocol", 200),  # half a JSON body
]
EARLY_IDS = [f"{f[0]}-{'stream' if f[1] else 'sync'}" for f in EARLY_BREAKS]


@pytest.mark.parametrize(("spec", "stream", "code", "error_code", "http_status"), EARLY_BREAKS, ids=EARLY_IDS)
def test_early_break_without_another_route_is_a_502(client, gateway, standins, spec, stream, code, error_code,
                                                    http_status):
    arm(standins, spec, model=ONLY_BASETEN)
    outcome = call(client, ONLY_BASETEN, stream=stream)
    assert_clean_error(outcome, 502, code)
    assert_ledger(gateway, outcome, [("error", error_code, http_status)])


@pytest.mark.parametrize(("spec", "stream", "code", "error_code", "http_status"), EARLY_BREAKS, ids=EARLY_IDS)
def test_early_break_falls_back(client, gateway, standins, spec, stream, code, error_code, http_status):
    arm(standins, spec, model=FALLBACK)
    outcome = call(client, FALLBACK, stream=stream)
    assert_fell_back(outcome)
    assert_ledger(gateway, outcome, [("error", error_code, http_status), ("ok", None, None)])


def test_a_body_cut_short_without_another_route_is_a_clean_502(client, gateway, standins):
    arm(standins, "drop_after_chunks:1", model=ONLY_BASETEN)  # half the promised Content-Length, then close
    outcome = call(client, ONLY_BASETEN, stream=False)
    assert outcome.status == 502 and outcome.error.body["type"] == "server_error"
    [row] = ledger_rows(gateway.database_url, outcome.request_id, 1)
    assert row["status"] == "error" and row["attempt"] == 1


def test_a_body_cut_short_falls_back(client, gateway, standins):
    arm(standins, "drop_after_chunks:1", model=FALLBACK)
    outcome = call(client, FALLBACK, stream=False)
    assert_fell_back(outcome)
    rows = ledger_rows(gateway.database_url, outcome.request_id, 2)
    assert [(r["attempt"], r["status"]) for r in rows] == [(1, "error"), (2, "ok")]


def test_a_body_cut_short_is_reported_as_a_protocol_error(client, gateway, standins):
    arm(standins, "drop_after_chunks:1", model=ONLY_BASETEN)
    outcome = call(client, ONLY_BASETEN, stream=False)
    assert_clean_error(outcome, 502, "upstream_protocol_error")
    assert_ledger(gateway, outcome, [("error", "protocol", None)])


# ---- the stream breaks after chunks reached the client: no fallback is possible any more ----------

MID_STREAM = [
    ("drop_after_chunks:3", "upstream_protocol_error", "protocol"),
    ("error_event_after_chunks:3", "upstream_stream_error", "stream_error"),
    ("malformed_chunk:3", "upstream_protocol_error", "protocol"),
]


@pytest.mark.parametrize("model", [ONLY_BASETEN, FALLBACK])
@pytest.mark.parametrize(("spec", "code", "error_code"), MID_STREAM, ids=[f[0] for f in MID_STREAM])
def test_mid_stream_break_ends_with_an_error_event_and_meters_the_partial_usage(
        client, gateway, standins, model, spec, code, error_code):
    arm(standins, spec, model=model)
    outcome = call(client, model, stream=True)
    assert_error_event(outcome, code)
    [row] = assert_ledger(gateway, outcome, [("error", error_code, None)])
    assert row["completion_tokens"] > 0 and row["provider_cost_usd"] > 0
    assert row["client_disconnected"] is False


def test_a_stream_stalling_mid_way_ends_with_an_error_event(impatient, impatient_client, standins):
    arm(standins, "timeout:3", model=ONLY_BASETEN)
    outcome = call(impatient_client, ONLY_BASETEN, stream=True)
    assert outcome.status == 200 and outcome.chunks >= 1
    assert outcome.error is not None and outcome.error.body["type"] == "server_error"
    [row] = ledger_rows(impatient.database_url, outcome.request_id, 1)
    assert row["status"] == "error" and row["completion_tokens"] > 0


def test_a_stream_stalling_mid_way_is_reported_as_a_timeout(impatient, impatient_client, standins):
    arm(standins, "timeout:3", model=ONLY_BASETEN)
    outcome = call(impatient_client, ONLY_BASETEN, stream=True)
    assert_error_event(outcome, "upstream_timeout")
    [row] = assert_ledger(impatient, outcome, [("error", "timeout", None)])
    assert row["completion_tokens"] > 0
