"""Request ids: uuid4's shape, unique in a process, and a forked child never repeats its parent's."""

from __future__ import annotations

import multiprocessing
import re

from service.app import new_request_id

SHAPE = re.compile(r"req_[0-9a-f]{32}")


def _child_ids(queue: multiprocessing.Queue) -> None:
    queue.put([new_request_id() for _ in range(1000)])


def test_ids_have_the_shape_and_never_repeat() -> None:
    ids = [new_request_id() for _ in range(20_000)]
    assert all(SHAPE.fullmatch(i) for i in ids)
    assert len(set(ids)) == len(ids)


def test_a_forked_child_draws_its_own_prefix() -> None:
    parent = [new_request_id() for _ in range(1000)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_ids, args=(queue,))
    proc.start()
    child = queue.get(timeout=20)
    proc.join(20)
    assert not set(child) & set(parent)
    assert {c[:20] for c in child} != {p[:20] for p in parent}  # the per-process prefix differs
