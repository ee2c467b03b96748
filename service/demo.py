"""`switchyard demo`: everything a new user needs to see Switchyard work, with no keys at all."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

import asyncpg

DEMO_KEYS = {"baseten": "sim-baseten-key", "xpay": "xpay_sk_sim", "orthogonal": "orth_test_sim"}
ADMIN_TOKEN_ENV = "SWITCHYARD_ADMIN_TOKEN"  # noqa: S105 - the variable's name
# A worker stopping in the demo is killed after this long (it holds nothing worth draining for).
DEMO_DRAIN_SECONDS = 5


async def _demo_key(database_url: str) -> str:
    from service.auth import tenants

    conn = await asyncpg.connect(database_url)
    try:
        tenant = await tenants.get_tenant(conn, "demo") or await tenants.create_tenant(conn, "demo")
        key, _ = await tenants.create_key(conn, tenant.id, name="demo")
        return key
    finally:
        await conn.close()


def admin_token(environ: dict[str, str] | os._Environ[str]) -> tuple[str, bool]:
    """The operator's SWITCHYARD_ADMIN_TOKEN, or a fresh one (and True) when it is unset."""
    given = environ.get(ADMIN_TOKEN_ENV)
    if given:
        return given, False
    return secrets.token_urlsafe(24), True


def browser_host(host: str) -> str:
    """Where a browser on this machine reaches a server bound to `host`."""
    return "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - compares, binds nothing


def run_demo(host: str, port: int) -> None:
    from service.cli import resolve_database, serve_forever
    from service.db.embedded import demo_home
    from service.simulator.runner import start_standins

    root = Path(os.environ.get("SWITCHYARD_DATA_DIR", ".switchyard"))
    data_dir = demo_home(root)
    os.environ["SWITCHYARD_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    token, generated = admin_token(os.environ)
    os.environ[ADMIN_TOKEN_ENV] = token
    print("Starting an embedded Postgres and applying migrations…", flush=True)
    database_url, embedded = resolve_database(data_dir)
    standins = start_standins(api_keys=DEMO_KEYS)
    os.environ.update(
        BASETEN_API_KEY=DEMO_KEYS["baseten"],
        BASETEN_BASE_URL=standins.baseten_url or "",
        XPAY_API_KEY=DEMO_KEYS["xpay"],
        XPAY_MCP_URL=standins.xpay_url or "",
        ORTHOGONAL_API_KEY=DEMO_KEYS["orthogonal"],
        ORTHOGONAL_BASE_URL=standins.orthogonal_url or "",
        LOG_JSON=os.environ.get("LOG_JSON", "false"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
    )
    key = asyncio.run(_demo_key(database_url))
    site = f"http://{browser_host(host)}:{port}"
    base = f"{site}/v1"
    token_note = ("generated for this run; set SWITCHYARD_ADMIN_TOKEN to choose it" if generated
                  else "from SWITCHYARD_ADMIN_TOKEN")
    print(
        f"""
Switchyard demo is starting on {site}
  console:            {site}/console
  admin token:        {token}  ({token_note})
  demo tenant API key (shown once): {key}
  stand-in upstreams: Baseten {standins.baseten_url}  xpay {standins.xpay_url}  Orthogonal {standins.orthogonal_url}
  database:           the embedded Postgres in {data_dir.resolve()}/pgdata

Try it:
  curl {base}/chat/completions \\
    -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "openai/gpt-oss-120b", "messages": [{{"role": "user", "content": "Hello"}}]}}' -i

  python -c 'from openai import OpenAI
c = OpenAI(base_url="{base}", api_key="{key}")
for chunk in c.chat.completions.create(model="moonshotai/Kimi-K2.5", stream=True,
        messages=[{{"role": "user", "content": "Hello"}}]):
    print(chunk.choices[0].delta.content or "" if chunk.choices else "", end="", flush=True)
print()'

  curl {base}/quote -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\
    -d '{{"model": "auto", "messages": [{{"role": "user", "content": "Hello"}}]}}'

  curl {site}/admin/tenants -H "Authorization: Bearer {token}"

Agent clients (README, "Connecting clients"):
  Anthropic SDK:  anthropic.Anthropic(base_url="{site}", api_key="{key}")
  Claude Code:    ANTHROPIC_BASE_URL={site} ANTHROPIC_API_KEY={key} \\
                    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 claude -p "say hi"
  Codex CLI:      in $CODEX_HOME/config.toml a [model_providers.switchyard] with
                    base_url = "{base}", wire_api = "responses", env_key = "SWITCHYARD_API_KEY";
                    then SWITCHYARD_API_KEY={key} codex exec "say hi"
  Responses API:  OpenAI(base_url="{base}", api_key=...).responses.create(model="auto", input="Hello")

The switchyard command uses this demo's database while it runs (from this directory, or with
SWITCHYARD_DATA_DIR={root.resolve()}):
  switchyard tenants list
  switchyard usage --group-by tenant,model

Press Ctrl+C to stop.
""",
        flush=True,
    )
    try:
        # Nothing to drain for: Ctrl+C ends the demo within seconds even if a worker hangs stopping.
        serve_forever(host, port, workers=1, drain_seconds=DEMO_DRAIN_SECONDS)
    finally:
        standins.stop()
        if embedded is not None:
            embedded.stop()
