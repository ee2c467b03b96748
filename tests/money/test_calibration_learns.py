"""What the planner learns from an answer: the gateway hands the calibration the request's output
cap and reasoning effort with the reported usage, so a cut-off answer is not taken for a short one."""

from __future__ import annotations

from typing import Any

from service.gateway.observers import CalibrationObserver
from service.routing.estimate import Calibration

from .harness import MODEL, assemble, chat_body


class Spy(Calibration):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[dict[str, Any]] = []

    def observe(self, model: str, estimated_prompt: int, prompt_tokens: int, completion_tokens: int,
                tenant: Any = None, *, cap: int | None = None, effort: str | None = None) -> None:
        self.seen.append({"model": model, "completion": completion_tokens, "cap": cap, "effort": effort})
        super().observe(model, estimated_prompt, prompt_tokens, completion_tokens, tenant, cap=cap, effort=effort)


async def test_each_answer_teaches_its_cap_and_effort(database_url):
    a = await assemble(database_url, None)
    spy = Spy()
    observer = next(o for o in a.gateway.attempts.observers if isinstance(o, CalibrationObserver))
    observer.calibration = spy
    try:
        # The stand-in answers 3 tokens: at max_tokens=3 every answer is cut off at its cap.
        for _ in range(30):
            body, view = chat_body(stream=False, max_tokens=3, reasoning_effort="high",
                                   provider={"order": ["baseten"]})
            await a.gateway.complete(a.context(stream=False), body, view)
        body, view = chat_body(stream=False, provider={"order": ["baseten"]})
        await a.gateway.complete(a.context(stream=False), body, view)
    finally:
        await a.pool.close()
    assert spy.seen[0] == {"model": MODEL, "completion": 3, "cap": 3, "effort": "high"}
    # No max_tokens: the upstream's default bounds the answer, and no effort was asked for.
    assert spy.seen[-1]["cap"] == 4_096 and spy.seen[-1]["effort"] is None
    # Answers that reached their cap count as longer than the cap: uncapped, more is expected.
    assert spy.expected_output(MODEL, None) > 3
    assert spy.expected_output(MODEL, 3, effort="high") <= 3
