"""`--profile`: py-spy on one worker under load, a speedscope file, and its top self-time frames.

The profiled load is a run of its own, after the measured ones: py-spy samples at 200 Hz and
stops the process for each sample, which would understate the figures of a measured run.
Only samples of the thread holding the GIL are kept (--gil): the Python code's own CPU, without
the threads parked in Condition.wait (the log writer) that would otherwise top the list. Time
spent in granian's Rust code and uvloop without the GIL is not in the file; with the GIL, uvloop's
compiled loop shows as granian's `_spawn_asgi_lifespan_worker`, the innermost Python frame under it.
The speedscope file opens at https://www.speedscope.app (or `npx speedscope FILE`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RATE_HZ = 200


def py_spy_binary(explicit: str | None) -> str:
    """The py-spy to run: the one named, else the virtual environment's (a dev dependency), else PATH's."""
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise RuntimeError("py-spy is not installed: `make setup` installs the dev extras, which hold it")
    return found


@contextlib.contextmanager
def recording(binary: str, pid: int, seconds: float, path: Path) -> Iterator[Path]:
    """py-spy recording `pid` for `seconds` into `path` (speedscope JSON) while the body runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    log = path.with_suffix(".py-spy.log")
    with log.open("wb") as out:
        # The argv is ours: py-spy found by py_spy_binary, numbers and paths the benchmark made.
        argv = [binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                "--rate", str(RATE_HZ), "--gil", "--format", "speedscope", "--output", str(path)]
        spy = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # noqa: S603
    try:
        yield path
        spy.wait(seconds + 30)
    finally:
        if spy.poll() is None:
            spy.kill()
            spy.wait(5)
    if spy.returncode != 0 or not path.exists():
        raise RuntimeError(f"py-spy failed ({spy.returncode}): {log.read_text('utf-8', 'replace')[-1000:]}")
    log.unlink(missing_ok=True)


def frame_label(frame: dict[str, Any]) -> str:
    name = frame.get("name", "?")
    file = frame.get("file") or ""
    # Site-packages paths are long and machine-specific; the package-relative tail names the code.
    for marker in ("site-packages/", "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            if marker.startswith("/lib/"):
                file = "stdlib:" + file.split("/", 1)[-1]
            break
    else:
        file = _repo_relative(file)
    line = frame.get("line")
    return f"{name} ({file}:{line})" if line else f"{name} ({file})"


def _repo_relative(file: str) -> str:
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return file.removeprefix(root)


def top_frames(path: Path, n: int = 10) -> dict[str, Any]:
    """The `n` frames with most self time (the innermost frame of each sample) and most total
    time (anywhere on the stack), as shares of all samples, over every thread of the profile."""
    data = json.loads(path.read_text("utf-8"))
    frames = data["shared"]["frames"]
    own: Counter[int] = Counter()
    anywhere: Counter[int] = Counter()
    total = 0.0
    units = {profile.get("unit", "none") for profile in data["profiles"]}
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            total += weight
            own[stack[-1]] += weight
            for index in set(stack):
                anywhere[index] += weight

    def rank(counter: Counter[int]) -> list[dict[str, Any]]:
        return [{"frame": frame_label(frames[i]), "share": round(w / total, 4)} for i, w in counter.most_common(n)]

    unit = units.pop() if len(units) == 1 else "mixed"
    return {"sampled": round(total, 3), "unit": unit, "self": rank(own), "total": rank(anywhere)}


def top_table(top: dict[str, Any], title: str) -> str:
    unit = "s" if top["unit"] == "seconds" else f" {top['unit']}"
    lines = [f"{title}: {top['sampled']:,.2f}{unit} sampled holding the GIL", "  self time:"]
    lines += [f"    {row['share'] * 100:5.1f}%  {row['frame']}" for row in top["self"]]
    return "\n".join(lines)
