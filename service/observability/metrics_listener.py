"""The metrics on a port of their own (SWITCHYARD_METRICS_PORT), served by `serve`'s master process.

The master is the one process that outlives every worker and sees all their metric files, so it
serves the sum (prometheus_client's MultiProcessCollector) on a plain listener, which an operator
keeps off the public network; the public port's /metrics then answers 404 (service.api.health).
"""

from __future__ import annotations

import os

import structlog

log = structlog.get_logger("switchyard.metrics")


def start_metrics_listener(host: str, port: int) -> None:
    """Serve the aggregated metrics from a daemon thread of this (the master) process.

    PROMETHEUS_MULTIPROC_DIR must be set first: without it there is nothing to aggregate."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        raise RuntimeError("a separate metrics port needs PROMETHEUS_MULTIPROC_DIR")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    # Workers are forked from this process: they must not keep the listening socket (nor the port)
    # open, nor answer on it with a copy of the master's state.
    os.register_at_fork(after_in_child=server.socket.close)
    log.info("metrics_listener", host=host, port=port)
