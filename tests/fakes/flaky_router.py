"""A router that fails one module's first calls, for the failed-module (retry / skip / abort)
tests: the unit tests wrap the real offline router with it, the TUI tests the daemon's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from agentfirm.router.base import CallResult, Message
from agentfirm.router.errors import RetryableProviderError


def starts_a_run(messages: Sequence[Message]) -> bool:
    """Whether a call starts a sub-agent run rather than continuing its agent loop (a later
    turn carries tool results): what the tests that count module runs count."""
    return not any(m.role == "tool" for m in messages)


class Flaky:
    """``inner``, failing ``failing``'s first ``failures`` calls (retryably, as a provider
    outage does); every run's last prompt is kept by module, and ``calls`` counts runs."""

    def __init__(self, inner: Any, failures: int, *, failing: str) -> None:
        self.inner = inner
        self.failures = failures
        self.failing = failing
        self.calls: Counter[str] = Counter()
        self.prompts: dict[str, list[str]] = {}

    async def call(self, *, messages: Sequence[Message], **kwargs: Any) -> CallResult:
        module_id = str(kwargs.get("module_id"))
        if starts_a_run(messages):
            self.calls[module_id] += 1
            self.prompts.setdefault(module_id, []).append(messages[-1].content)
        if module_id == self.failing and self.failures > 0:
            self.failures -= 1
            raise RetryableProviderError("every provider for tier execution failed: 503")
        result: CallResult = await self.inner.call(messages=messages, **kwargs)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
