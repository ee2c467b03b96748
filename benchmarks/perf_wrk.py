"""wrk as the load generator: a Lua script for the POST body and key, one JSON line of results."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

# Every thread builds its request once; request() only counts, so wrk stays cheap per request.
# `sent` is a global so done() can read each thread's count: requests written, answered or not,
# which is what the ledger must hold a row for. wrk calls request() once on its first thread's
# state before any connection opens (script_verify_request, to learn the pipeline depth); that
# call sends nothing, so the first thread starts counting at -1.
LUA = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

function init(args)
  sent = (index == 1) and -1 or 0
  local headers = {["Content-Type"] = "application/json"}
  if args[2] ~= nil and args[2] ~= "" then
    headers["Authorization"] = "Bearer " .. (slurp(args[2]):gsub("%s+$", ""))
  end
  prepared = wrk.format("POST", nil, headers, slurp(args[1]))
end

function request()
  sent = sent + 1
  return prepared
end

function done(summary, latency, requests)
  local sent_total = 0
  for _, t in ipairs(threads) do
    sent_total = sent_total + (t:get("sent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"sent":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d}}\n',
    summary.requests, sent_total, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""

MARK = "WRK_RESULT "


@dataclass(frozen=True)
class WrkResult:
    connections: int
    requests: int  # answered within the run
    sent: int  # written to the socket, answered or not
    duration_s: float
    bytes: int
    errors: dict[str, int]
    latency_ms: dict[str, float]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def failed(self) -> int:
        """Non-2xx answers plus socket errors; a clean run has none."""
        return sum(self.errors.values())

    def as_json(self) -> dict:
        out = asdict(self)
        out["rps"] = round(self.rps, 1)
        return out


def parse_output(stdout: str, connections: int) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(MARK):
            raw = json.loads(line[len(MARK):])
            return WrkResult(
                connections=connections,
                requests=raw["requests"],
                sent=raw["sent"],
                duration_s=raw["duration_us"] / 1e6,
                bytes=raw["bytes"],
                errors=raw["errors"],
                latency_ms={k: v / 1000.0 for k, v in raw["latency_us"].items()},
            )
    raise ValueError(f"wrk printed no result line; its output was:\n{stdout[-2000:]}")


class Wrk:
    """Runs wrk from files in the run directory: the script, each request body, the key."""

    def __init__(self, run_dir: Path) -> None:
        binary = shutil.which("wrk")
        if binary is None:
            raise RuntimeError("wrk is not installed; run scripts/bench-deps.sh (make bench does)")
        self.binary = binary
        self.run_dir = run_dir
        self.script = run_dir / "post.lua"
        self.script.write_text(LUA, "utf-8")
        self.process: subprocess.Popen | None = None

    def write_file(self, name: str, data: bytes) -> Path:
        path = self.run_dir / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    def run(self, url: str, body: Path, key: Path | None, *, connections: int, seconds: float,
            threads: int = 1, timeout_s: int = 10) -> WrkResult:
        # One wrk thread drives 32 connections well past the gateway's rate, and leaves the
        # second core to the system under test.
        threads = max(1, min(threads, connections))
        cmd = [self.binary, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
               "--timeout", f"{timeout_s}s", "-s", str(self.script), url, "--", str(body), str(key or "")]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        try:
            stdout, _ = self.process.communicate(timeout=seconds + timeout_s + 30)
        finally:
            self.stop()
        if self.process.returncode != 0:
            raise RuntimeError(f"wrk failed ({self.process.returncode}): {stdout[-2000:]}")
        return parse_output(stdout, connections)

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(5)
