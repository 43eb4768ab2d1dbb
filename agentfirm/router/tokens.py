"""Token estimates for text we have not sent yet: budget reservations, plan estimates and the
offline provider's usage. Roughly four characters per token, as for English with common BPE
vocabularies; providers' own counts replace these once a call has run."""

from __future__ import annotations

from collections.abc import Iterable

from agentfirm.router.base import Message

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
"""Role markers and separators each chat message costs on top of its content."""


def estimate_tokens(text: str) -> int:
    """About ``len(text) / 4`` tokens, rounded up; at least 1."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


def estimate_messages(messages: Iterable[Message]) -> int:
    """Input tokens of a chat: every message's content plus a small per-message overhead."""
    return sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)
