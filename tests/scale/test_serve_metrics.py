"""`switchyard serve` with several workers counts every request once, with nothing set by hand."""

from __future__ import annotations

import socket

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.prometheus_helpers import settled_scrape
from tests.scale.serve_process import ServeProcess, free_port
from tests.support import acreate_tenant_with_key


@pytest.mark.slow
async def test_workers_share_one_metrics_directory_by_default(standins, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    server = ServeProcess(standins, database_url, workers=2, metrics_dir=False).start()
    try:
        for i in range(12):  # a new connection each time, so both workers take some
            r = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {tenant.key}"},
                           json={"model": "openai/gpt-oss-120b", "provider": {"only": ["baseten"]},
                                 "messages": [{"role": "user", "content": f"hi {i}"}]}, timeout=20)
            assert r.status_code == 200
        # Multiprocess mode writes each worker's values to files under the data directory; without
        # it a scrape would show whichever worker answered it.
        assert list((server.data_dir / "prometheus").glob("*.db"))
        text = settled_scrape(server.url + "/metrics", "switchyard_requests_total", 12)
        served = sum(s.value for family in text_string_to_metric_families(text)
                     if family.name == "switchyard_requests" for s in family.samples
                     if s.name == "switchyard_requests_total")
        assert served == 12
    finally:
        assert server.stop() == 0, server.log()[-2000:]


def _requests_total(text: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text) if family.name == "switchyard_requests"
               for s in family.samples if s.name == "switchyard_requests_total")


@pytest.mark.slow
async def test_a_metrics_port_serves_every_workers_metrics_and_the_public_port_none(standins, database_url):
    tenant = await acreate_tenant_with_key(database_url)
    metrics_port = free_port()
    server = ServeProcess(standins, database_url, workers=2, metrics_dir=False,
                          SWITCHYARD_METRICS_PORT=str(metrics_port)).start()
    try:
        for i in range(12):
            r = httpx.post(server.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {tenant.key}"},
                           json={"model": "openai/gpt-oss-120b", "provider": {"only": ["baseten"]},
                                 "messages": [{"role": "user", "content": f"hi {i}"}]}, timeout=20)
            assert r.status_code == 200
        assert httpx.get(server.url + "/metrics", timeout=10).status_code == 404
        assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).status_code == 200
        scraped = settled_scrape(f"http://127.0.0.1:{metrics_port}/metrics", "switchyard_requests_total", 12)
        assert _requests_total(scraped) == 12  # both workers' counts, summed by the master
        # Point-in-time gauges are kept fresh by the workers themselves: no scrape reaches them now.
        assert "switchyard_usage_queue_depth" in scraped
        assert "switchyard_build_info" in scraped
    finally:
        assert server.stop() == 0, server.log()[-2000:]
    with pytest.raises(httpx.ConnectError):  # the listener went with the server
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)


@pytest.mark.slow
def test_a_metrics_port_in_use_stops_serve_with_a_clear_message(standins, database_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServeProcess(standins, database_url, workers=1, SWITCHYARD_METRICS_PORT=str(port))
        with pytest.raises(RuntimeError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            server.start(timeout=30)
    server.stop()
