"""Another revision of the code beside the current one, for before-and-after runs (`--against REF`
in benchmarks.perf and benchmarks.hotpath)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def checkout(ref: str, path: Path, stack: contextlib.ExitStack) -> Path:
    """A detached git worktree of `ref` at `path`, removed when `stack` closes."""
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), ref], check=True)
    stack.callback(subprocess.run, ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                   check=False)
    return path


def alternating(rounds: int) -> Iterator[str]:
    """"then" and "now", `rounds` times each, in alternating order: an A/A run of make bench showed
    the second of a pair up to 8% faster, so one fixed order cannot show a change of that size."""
    for round_ in range(rounds):
        yield from (("then", "now") if round_ % 2 == 0 else ("now", "then"))


def run_pairs(rounds: int, run: Callable[[str], T]) -> dict[str, list[T]]:
    """Each side's results, from `run("then")` and `run("now")` in alternating order."""
    sides: dict[str, list[T]] = {"then": [], "now": []}
    for which in alternating(rounds):
        sides[which].append(run(which))
    return sides
