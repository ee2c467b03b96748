"""The console in a real browser (Debian's Chromium through Playwright): sign-in, every view with the
seeded month, the numbers on the page equal to the API's, another tenant's data never on the page,
the cookie as the browser holds it, sign-out, and a page of another origin that cannot act for the
user. A screenshot of each view is saved under tests/console/artifacts/."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.console.conftest import ADMIN_TOKEN, ARTIFACTS, RANGE
from tests.console.seed import Seed, usd

SPEND_BY = ("model", "front_end", "project", "tag", "key")


def _api_path(view: str, tenant: str | None = None, by: str | None = None) -> str:
    """The API call the page makes for a view (its parameters in the page's order)."""
    query = f"from={RANGE['from']}&to={RANGE['to']}"
    if tenant:
        query += f"&tenant={tenant}"
    if by:
        query += f"&by={by}"
    return f"/console/api/{view}?{query}"


async def _sign_in(page: Any, base: str, kind: str, secret: str) -> None:
    await page.goto(base + "/console")
    await page.wait_for_selector('body[data-rendered="signin"]')
    await page.check(f"input[name=kind][value={kind}]")
    await page.fill("#signin-secret", secret)
    await page.click("#signin-submit")


async def _show(page: Any, base: str, view: str, tenant: str | None = None, by: str | None = None) -> dict[str, Any]:
    """Open a view with the seeded range; returns the API's answer to the call the page made."""
    fragment = f"view={view}&from={RANGE['from']}&to={RANGE['to']}"
    fragment += f"&tenant={tenant}" if tenant else ""
    fragment += f"&by={by}" if by else ""
    await page.goto(f"{base}/console#{fragment}")
    path = _api_path(view, tenant, by if view == "spend" else None)
    await page.wait_for_selector(f'body[data-rendered="{view}"][data-query="{path}"]')
    response = await page.context.request.get(base + path)
    assert response.ok, await response.text()
    return await response.json()


async def _money(locator: Any, expected: str) -> None:
    """An amount on the page: exactly the API's, shown as the page writes it."""
    assert await locator.get_attribute("data-usd") == expected
    assert (await locator.inner_text()).strip() == usd(expected)


async def _rows(page: Any, table: str) -> dict[str, list[str]]:
    """A table's rows by data-key: each cell's exact value (data-usd, data-count) or its text."""
    return await page.eval_on_selector_all(
        f"#{table} tbody tr[data-key]",
        """rows => Object.fromEntries(rows.map(r => [r.dataset.key, [...r.cells].map(c =>
             c.dataset.usd !== undefined ? c.dataset.usd : c.dataset.count !== undefined ? c.dataset.count
             : c.textContent.trim())]))""")


async def _check_spend(page: Any, data: dict[str, Any]) -> None:
    await _money(page.locator("#spend-cards [data-total=billed_usd]"), data["total"]["billed_usd"])
    requests = await page.get_attribute("#spend-cards [data-total=requests]", "data-count")
    assert requests == str(data["total"]["requests"])
    rows = await _rows(page, "spend-table")
    fields = ("billed_usd", "requests", "attempts", "prompt_tokens", "cached_tokens", "completion_tokens",
              "reasoning_tokens")
    assert rows == {g["key"]: [g["label"], *(str(g[f]) for f in fields)] for g in data["groups"]}
    for g in data["groups"][:3]:
        cell = page.locator(f'#spend-table tr[data-key="{g["key"]}"] td[data-usd]')
        await _money(cell, g["billed_usd"])
    assert await page.locator("#spend-chart canvas").count() == 1


async def _check_savings(page: Any, data: dict[str, Any]) -> None:
    for name in ("billed_usd", "direct_billed_usd", "savings_usd"):
        await _money(page.locator(f"#savings-cards [data-total={name}]"), data["total"][name])
    savings = await page.inner_text("#savings-cards [data-total=savings_percent]")
    assert savings == data["total"]["savings_percent"] + "%"
    fields = ("requests", "billed_usd", "direct_billed_usd", "savings_usd", "savings_percent")
    rows = await _rows(page, "savings-models")
    assert rows == {r["model"]: [r["model"], *(str(r[f]) for f in fields[:4]), f"{r['savings_percent']}%"]
                    for r in data["by_model"]}
    assert await page.locator("#savings-chart canvas").count() == 1


async def _check_budgets(page: Any, data: dict[str, Any]) -> None:
    assert data["budgets"]
    for b in data["budgets"]:
        card = page.locator(f'[data-budget-id="{b["id"]}"]')
        await _money(card.locator(".used"), b["used_usd"])
        await _money(card.locator(".limit"), b["limit_usd"])
        await _money(card.locator(".spent"), b["spent_usd"])
        assert await card.locator(".percent").inner_text() == f"{b['used_percent']}%"
        assert await card.locator("[data-alert]").count() == len(b["alerts"])
        assert await card.locator(".tick").count() == len(b["thresholds"])
        width = await card.locator(".fill").evaluate("e => e.style.width")
        assert abs(float(width.rstrip("%")) - min(100.0, float(b["spent_usd"]) * 100 / float(b["limit_usd"]))) < 0.01


async def _check_top(page: Any, data: dict[str, Any], base: str, tenant: str | None, operator_all: bool) -> None:
    keys = await _rows(page, "top-keys")
    assert list(keys) == [k["key_id"] for k in data["keys"]]
    for k in data["keys"]:
        await _money(page.locator(f'#top-keys tr[data-key="{k["key_id"]}"] td[data-usd]'), k["billed_usd"])
        assert str(k["requests"]) in keys[k["key_id"]]
    if operator_all:
        assert "pick a tenant" in await page.inner_text("#top-users-note")
        assert await page.locator("#top-users tr").count() == 0
        return
    # End users arrive after the keys (they are read from the ledger).
    path = _api_path("users", tenant)
    await page.wait_for_selector(f'body[data-users="{path}"]')
    users_data = await (await page.context.request.get(base + path)).json()
    users = await _rows(page, "top-users")
    assert users_data["users"] and list(users) == [u["user"] or "" for u in users_data["users"]]
    for u in users_data["users"]:
        assert users[u["user"] or ""][1] == u["billed_usd"]


async def _check_requests(page: Any, data: dict[str, Any]) -> None:
    rows = await _rows(page, "requests-table")
    assert list(rows) == [f"{r['request_id']}/{r['attempt']}" for r in data["requests"]]
    for r in data["requests"][:10]:
        cells = rows[f"{r['request_id']}/{r['attempt']}"]
        assert r["route"] in cells and r["billed_usd"] in cells
        assert [str(r[f]) for f in ("prompt_tokens", "cached_tokens", "completion_tokens", "reasoning_tokens")] == \
            [c for c in cells if c.isdigit()][-4:]
    first = data["requests"][0]
    await _money(page.locator(f'#requests-table tr[data-key="{first["request_id"]}/{first["attempt"]}"] td[data-usd]'),
                 first["billed_usd"])


async def _no_trace_of(page: Any, strings: set[str]) -> None:
    html = await page.content()
    leaked = sorted(s for s in strings if s in html)
    assert not leaked, leaked


def _watch(page: Any) -> tuple[list[str], list[str]]:
    """The page's console errors (CSP violations among them) and every URL it requested."""
    errors: list[str] = []
    urls: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: urls.append(r.url))
    return errors, urls


async def test_a_tenant_signs_in_and_every_view_shows_the_apis_numbers(page: Any, gateway: Any,
                                                                       seeded: Seed) -> None:
    errors, urls = _watch(page)
    await _sign_in(page, gateway.url, "api_key", seeded.a.keys[0].key)
    await page.wait_for_selector('body[data-rendered="spend"]')
    assert seeded.a.name in await page.inner_text("#who")
    assert await page.locator("#tenant-picker").is_hidden()
    for by in SPEND_BY:
        data = await _show(page, gateway.url, "spend", by=by)
        assert data["groups"], by
        await _check_spend(page, data)
        if by == "model":
            # The same numbers the public usage API gives the same key.
            usage = await page.context.request.get(
                f"{gateway.url}/v1/usage?from={RANGE['from']}&to={RANGE['to']}&group_by=model",
                headers={"authorization": f"Bearer {seeded.a.keys[0].key}"})
            for row in (await usage.json())["data"]:
                cell = page.locator(f'#spend-table tr[data-key="{row["model"]}"] td[data-usd]')
                await _money(cell, row["cost_usd"])
        await page.screenshot(path=str(ARTIFACTS / f"tenant-spend-by-{by}.png"), full_page=True)
        await _no_trace_of(page, seeded.b.strings())
    checks = {"savings": _check_savings, "budgets": _check_budgets, "requests": _check_requests}
    for view in ("savings", "budgets", "top", "requests"):
        data = await _show(page, gateway.url, view)
        if view == "top":
            await _check_top(page, data, gateway.url, None, operator_all=False)
        else:
            await checks[view](page, data)
        await page.screenshot(path=str(ARTIFACTS / f"tenant-{view}.png"), full_page=True)
        await _no_trace_of(page, seeded.b.strings())
    # Even asked for in the page's own URL, another tenant's data is not shown.
    await page.goto(f"{gateway.url}/console#view=requests&from={RANGE['from']}&to={RANGE['to']}&tenant={seeded.b.id}")
    await page.wait_for_selector(f'body[data-rendered="requests"][data-query="{_api_path("requests")}"]')
    await _no_trace_of(page, seeded.b.strings())
    assert errors == []
    assert all(u.startswith((gateway.url + "/", "data:")) for u in urls), urls


async def test_the_operator_sees_every_tenant_and_picks_one(page: Any, gateway: Any, seeded: Seed) -> None:
    errors, _ = _watch(page)
    await _sign_in(page, gateway.url, "admin_token", ADMIN_TOKEN)
    await page.wait_for_selector('body[data-rendered="spend"][data-tenants]')
    assert await page.inner_text("#who") == "Operator"
    data = await _show(page, gateway.url, "spend", by="project")
    await _check_spend(page, data)
    usage = await page.context.request.get(f"{gateway.url}/admin/usage?from={RANGE['from']}&to={RANGE['to']}",
                                           headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    await _money(page.locator("#spend-cards [data-total=billed_usd]"), (await usage.json())["total"]["billed_usd"])
    await page.screenshot(path=str(ARTIFACTS / "operator-spend-by-project.png"), full_page=True)
    # Tags are each tenant's own: across every tenant the page asks for a tenant instead.
    await page.goto(f"{gateway.url}/console#view=spend&from={RANGE['from']}&to={RANGE['to']}&by=tag")
    await page.wait_for_selector(f'body[data-rendered="spend"][data-query="{_api_path("spend", by="tag")}"]')
    assert "pick a tenant" in await page.inner_text("#spend-note")
    checks = {"savings": _check_savings, "budgets": _check_budgets, "requests": _check_requests}
    for view in ("savings", "budgets", "top", "requests"):
        data = await _show(page, gateway.url, view)
        if view == "top":
            await _check_top(page, data, gateway.url, None, operator_all=True)
        else:
            await checks[view](page, data)
        await page.screenshot(path=str(ARTIFACTS / f"operator-{view}.png"), full_page=True)
    # Picking a tenant in the page scopes every view to it.
    await page.goto(f"{gateway.url}/console#view=spend&from={RANGE['from']}&to={RANGE['to']}&by=tag")
    await page.select_option("#tenant-select", str(seeded.b.id))
    await page.wait_for_selector(
        f'body[data-rendered="spend"][data-query="{_api_path("spend", str(seeded.b.id), "tag")}"]')
    response = await page.context.request.get(gateway.url + _api_path("spend", str(seeded.b.id), "tag"))
    picked = await response.json()
    await _check_spend(page, picked)
    assert Decimal(picked["total"]["billed_usd"]) == sum(e.billed_usd for e in seeded.b.in_range())
    shown = await page.inner_text("#view-spend")
    assert not [s for s in seeded.a.strings() if s in shown]
    await page.screenshot(path=str(ARTIFACTS / "operator-tenant-spend-by-tag.png"), full_page=True)
    data = await _show(page, gateway.url, "top", tenant=str(seeded.b.id))
    await _check_top(page, data, gateway.url, str(seeded.b.id), operator_all=False)
    await page.screenshot(path=str(ARTIFACTS / "operator-tenant-top.png"), full_page=True)
    assert errors == []


async def test_a_bad_key_is_refused_and_nothing_is_kept(page: Any, gateway: Any, seeded: Seed) -> None:
    await _sign_in(page, gateway.url, "api_key", "sk-sy-not-a-real-key-0000000000000000")
    await page.wait_for_selector("#signin-error:not(:empty)")
    assert "Incorrect API key" in await page.inner_text("#signin-error")
    assert await page.locator("#app").is_hidden() and await page.context.cookies() == []
    await page.screenshot(path=str(ARTIFACTS / "signin-refused.png"), full_page=True)
    await _sign_in(page, gateway.url, "admin_token", "not-the-admin-token-000000")
    await page.locator("#signin-error", has_text="admin token").wait_for()
    assert await page.context.cookies() == []
    # The right key signs in; the browser keeps a session cookie and nothing else of it.
    key = seeded.a.keys[1].key
    await _sign_in(page, gateway.url, "api_key", key)
    await page.wait_for_selector('body[data-rendered="spend"]')
    cookies = await page.context.cookies()
    assert len(cookies) == 1
    cookie = cookies[0]
    assert (cookie["name"], cookie["path"], cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == \
        ("switchyard_console", "/console", True, "Strict", False)
    assert cookie["expires"] == -1  # ends with the browser session
    kept = await page.evaluate("""() => [document.cookie, JSON.stringify(localStorage), JSON.stringify(sessionStorage),
                                         document.querySelector('#signin-secret').value]""")
    assert kept == ["", "{}", "{}", ""]
    assert key not in await page.content()


async def test_sign_out_ends_the_session(page: Any, gateway: Any, seeded: Seed) -> None:
    await _sign_in(page, gateway.url, "api_key", seeded.a.keys[0].key)
    await page.wait_for_selector('body[data-rendered="spend"]')
    session_cookie = (await page.context.cookies())[0]["value"]
    await page.click("#signout")
    await page.wait_for_selector('body[data-rendered="signin"]')
    assert await page.inner_text("#signin-error") == "Signed out." and await page.context.cookies() == []
    await page.reload()
    await page.wait_for_selector('body[data-rendered="signin"]')
    replayed = await page.context.request.get(gateway.url + "/console/api/session",
                                              headers={"cookie": f"switchyard_console={session_cookie}"})
    assert replayed.status == 401


async def _elsewhere(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Another site's page (an ASGI app of a few lines): no CSP, so its script may call anyone."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": b"<p>elsewhere</p>"})


@pytest.fixture
def elsewhere() -> Any:
    from service.simulator.runner import ServerThread

    server = ServerThread(_elsewhere).start()
    yield server
    server.stop()


async def test_a_page_of_another_origin_cannot_act_for_the_user(page: Any, gateway: Any, seeded: Seed,
                                                                elsewhere: Any) -> None:
    await _sign_in(page, gateway.url, "api_key", seeded.a.keys[0].key)
    await page.wait_for_selector('body[data-rendered="spend"]')
    answers: list[tuple[str, int]] = []
    page.on("response", lambda r: answers.append((r.request.method, r.status)) if "/console/api/" in r.url else None)
    # Another site on this machine: `localhost` is not 127.0.0.1's site, so SameSite=Strict holds the cookie back.
    await page.goto(f"http://localhost:{elsewhere.port}/")
    outcome = await page.evaluate("""async (target) => {
        const out = {};
        const attempt = async (name, init) => {
            try { const r = await fetch(target + "/console/api/" + name, init); out[name + init.method] = r.status; }
            catch (e) { out[name + init.method] = "blocked"; }
        };
        await attempt("spend", {method: "GET", credentials: "include"});
        await attempt("session", {method: "DELETE", credentials: "include", headers: {"x-switchyard-csrf": "guess"}});
        await attempt("session", {method: "POST", mode: "no-cors", credentials: "include",
                                  headers: {"content-type": "text/plain"}, body: '{"api_key": "sk-sy-attacker"}'});
        return out;
    }""", gateway.url)
    # Nothing readable: the read fails for want of CORS, the DELETE never passes its preflight, the
    # form-like POST is opaque.
    assert outcome == {"spendGET": "blocked", "sessionDELETE": "blocked", "sessionPOST": 0}, outcome
    # And the server refused what reached it: the POST (no cookie crossed sites, and the browser
    # said where it came from); nothing was answered with a success but a preflight's bare 204.
    assert ("POST", 403) in answers, answers
    assert all(status >= 400 or (method, status) == ("OPTIONS", 204) for method, status in answers), answers
    still = await page.context.request.get(gateway.url + "/console/api/session")
    assert still.status == 200 and (await still.json())["tenant"]["id"] == str(seeded.a.id)
