"""A client that leaves while sending its request body: no upstream call, counted and logged."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families


def client_gone_count(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) if f.name == "switchyard_rejections"
               for s in f.samples if s.labels.get("reason") == "client_disconnected")


def test_a_body_cut_short_by_a_disconnect_is_counted_with_no_upstream_call(gateway, tenant, standins):
    before = client_gone_count(gateway.url)
    upstream_before = len(httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"])
    parts = urlsplit(gateway.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as s:
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + tenant.key.encode() + b"\r\nContent-Length: 5000\r\n\r\n"
                  b'{"model":"openai/gpt-oss-120b","messages":[')
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while client_gone_count(gateway.url) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client_gone_count(gateway.url) == before + 1
    upstream_after = len(httpx.get(standins.servers["baseten"].url + "/__control/requests").json()["requests"])
    assert upstream_after == upstream_before
