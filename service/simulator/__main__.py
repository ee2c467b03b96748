"""`python -m service.simulator`: run the stand-in upstreams until interrupted and print their URLs."""

from __future__ import annotations

import argparse
import signal
import threading

from service.simulator.runner import start_standins


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m service.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--baseten-port", type=int, default=0)
    parser.add_argument("--xpay-port", type=int, default=0)
    parser.add_argument("--orthogonal-port", type=int, default=0)
    args = parser.parse_args(argv)
    ports = {"baseten": args.baseten_port, "xpay": args.xpay_port, "orthogonal": args.orthogonal_port}
    standins = start_standins(args.host, ports)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        for name, url in (
            ("baseten", standins.baseten_url),
            ("xpay", standins.xpay_url),
            ("orthogonal", standins.orthogonal_url),
        ):
            if url is None:
                print(f"{name:<11} not available", flush=True)
            else:
                # The keys are fakes made for this local process; showing them is what lets you use it.
                print(f"{name:<11} {url}  key={standins.api_keys[name]}", flush=True)
        stop.wait()
    finally:
        standins.stop()


if __name__ == "__main__":
    main()
