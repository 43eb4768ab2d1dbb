"""A scripted ``RouterLike`` for Master Agent tests: each call pops the next reply scripted for its
``module_id`` — a dict (returned as the structured output, unvalidated, so tests can feed replies a
real router would repair), a str (a free-text answer), an exception to raise, or a function of the
recorded call returning one of those (a scripted model that reads its prompt) — and is recorded."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentfirm.domain.models import Tier
from agentfirm.router.base import CallResult, Message, Usage

Answer = dict[str, Any] | str | Exception


@dataclass(frozen=True)
class RecordedCall:
    tier: Tier
    messages: tuple[Message, ...]
    task_id: str
    module_id: str | None
    output_schema: dict[str, Any] | None
    max_tokens: int

    @property
    def prompt(self) -> str:
        """The last message's text: the module's own part of the prompt."""
        return self.messages[-1].content if self.messages else ""


Reply = Answer | Callable[[RecordedCall], Answer]


class ScriptedRouter:
    def __init__(self, script: Mapping[str, Sequence[Reply]]) -> None:
        self._script = {module_id: deque(replies) for module_id, replies in script.items()}
        self.calls: list[RecordedCall] = []

    async def call(
        self,
        *,
        tier: Tier,
        messages: Sequence[Message],
        task_id: str,
        module_id: str | None = None,
        output_schema: dict[str, Any] | None = None,
        max_tokens: int = 2048,
    ) -> CallResult:
        call = RecordedCall(tier, tuple(messages), task_id, module_id, output_schema, max_tokens)
        self.calls.append(call)
        queue = self._script.get(module_id or "")
        if not queue:
            raise AssertionError(f"no scripted reply left for module {module_id!r}")
        scripted = queue.popleft()
        reply = scripted(call) if callable(scripted) else scripted
        if isinstance(reply, Exception):
            raise reply
        return CallResult(
            call_id=f"call-{len(self.calls)}",
            tier=tier,
            provider="scripted",
            model="scripted-1",
            text=reply if isinstance(reply, str) else json.dumps(reply),
            data=None if isinstance(reply, str) else reply,
            usage=Usage(input_tokens=100, output_tokens=50),
            cost_nano=1_000,
            latency_ms=1,
            simulated=True,
        )


def every_item_explained(why: str, *, items: int = 20) -> list[dict[str, Any]]:
    """A planner reply's ``uncovered`` giving ``why`` for each of the first ``items`` checklist
    items: a scripted plan that drops a shipped persona's modules for a test about something
    else says why, so the coverage guard lets it through (an item still covered is ignored)."""
    return [{"item": number, "why": why} for number in range(1, items + 1)]
