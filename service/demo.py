"""`switchyard demo`: everything a new user needs to see Switchyard work, with no keys at all."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

DEMO_KEYS = {"baseten": "sim-baseten-key", "xpay": "xpay_sk_sim", "orthogonal": "orth_test_sim"}


async def _demo_key(database_url: str) -> str:
    import asyncpg

    from service.auth import tenants

    conn = await asyncpg.connect(database_url)
    try:
        tenant = await tenants.get_tenant(conn, "demo") or await tenants.create_tenant(conn, "demo")
        key, _ = await tenants.create_key(conn, tenant.id, name="demo")
        return key
    finally:
        await conn.close()


def run_demo(host: str, port: int) -> None:
    from service.cli import resolve_database, serve_forever
    from service.simulator.runner import start_standins

    data_dir = Path(os.environ.get("SWITCHYARD_DATA_DIR", ".switchyard")) / "demo"
    os.environ["SWITCHYARD_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    print("Starting an embedded Postgres and applying migrations…", flush=True)
    database_url, embedded = resolve_database(data_dir)
    standins = start_standins(api_keys=DEMO_KEYS)
    os.environ.update(
        BASETEN_API_KEY=DEMO_KEYS["baseten"],
        BASETEN_BASE_URL=standins.baseten_url,
        XPAY_API_KEY=DEMO_KEYS["xpay"],
        XPAY_MCP_URL=standins.xpay_url or "",
        ORTHOGONAL_API_KEY=DEMO_KEYS["orthogonal"],
        ORTHOGONAL_BASE_URL=standins.orthogonal_url or "",
        LOG_JSON=os.environ.get("LOG_JSON", "false"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "WARNING"),
    )
    key = asyncio.run(_demo_key(database_url))
    base = f"http://{host}:{port}/v1"
    print(
        f"""
Switchyard demo is starting on http://{host}:{port}
  stand-in upstreams: Baseten {standins.baseten_url}  xpay {standins.xpay_url}  Orthogonal {standins.orthogonal_url}
  demo tenant API key (shown once): {key}

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

Press Ctrl+C to stop.
""",
        flush=True,
    )
    try:
        serve_forever(host, port, workers=1)
    finally:
        standins.stop()
        if embedded is not None:
            embedded.stop()
