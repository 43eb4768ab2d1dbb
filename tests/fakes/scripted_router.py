"""A scripted ``RouterLike`` for Master Agent tests: each call pops the next reply scripted for its
``module_id`` — a dict (returned as the structured output, unvalidated, so tests can feed replies a
real router would repair) or an exception to raise — and is recorded."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentfirm.domain import Tier
from agentfirm.router.base import CallResult, Message, Usage

Reply = dict[str, Any] | Exception


@dataclass(frozen=True)
class RecordedCall:
    tier: Tier
    messages: tuple[Message, ...]
    task_id: str
    module_id: str | None
    output_schema: dict[str, Any] | None
    max_tokens: int


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
        self.calls.append(
            RecordedCall(tier, tuple(messages), task_id, module_id, output_schema, max_tokens)
        )
        queue = self._script.get(module_id or "")
        if not queue:
            raise AssertionError(f"no scripted reply left for module {module_id!r}")
        reply = queue.popleft()
        if isinstance(reply, Exception):
            raise reply
        return CallResult(
            call_id=f"call-{len(self.calls)}",
            tier=tier,
            provider="scripted",
            model="scripted-1",
            text=json.dumps(reply),
            data=reply,
            usage=Usage(input_tokens=100, output_tokens=50),
            cost_nano=1_000,
            latency_ms=1,
            simulated=True,
        )
