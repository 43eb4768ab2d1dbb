"""How the provider fakes count and bill, the way real services do.

Usage follows the request as it arrived: every text of it (system prompt, messages) and every
schema and tool definition sent, counted with a real BPE vocabulary (OpenAI's ``cl100k_base``,
shipped inside ``bpe-openai``: nothing is downloaded), plus the tokens a service adds that the
text does not show (role markers, the tool-use system prompt). So dense text, Japanese and large
schemas cost what they would, and the router's reservation is tested against a count it did not
make. A service bills on receipt: an answer the client hung up on is billed all the same. Each
fake keeps what it billed (``Bill``), which tests compare with the ledger.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

MESSAGE_TOKENS = 4
"""Role markers and separators per message."""
PROMPT_TOKENS = 3
"""Start and end markers of a prompt."""
TOOL_PROMPT_TOKENS = 346
"""The system prompt a service adds when a request carries tools (Anthropic's figure for a
forced tool call)."""
SCHEMA_PROMPT_TOKENS = 64
"""What a service adds around a response schema (OpenAI's json_schema, Gemini's schema)."""


@cache
def _encoding() -> Any:
    import bpe_openai

    return bpe_openai.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """``text``'s tokens in OpenAI's cl100k_base vocabulary (it loads in a tenth of the time
    o200k_base takes, which matters to a fake answering its first request)."""
    return len(_encoding().encode(text)) if text else 0


def json_tokens(value: Any) -> int:
    """The tokens of ``value`` as the JSON the service received."""
    return count_tokens(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def prompt_tokens(texts: Iterable[str], definitions: Iterable[Any] = (), *, extra: int = 0) -> int:
    """Input tokens of a prompt made of message ``texts`` and JSON ``definitions`` (schemas,
    tools), plus ``extra`` tokens the service adds."""
    total = PROMPT_TOKENS + extra
    for text in texts:
        total += count_tokens(text) + MESSAGE_TOKENS
    for definition in definitions:
        total += json_tokens(definition)
    return total


@dataclass(frozen=True)
class Billed:
    """One request the service billed."""

    model: str
    input_tokens: int
    """All input, cache reads and writes included."""
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    web_searches: int = 0


@dataclass(frozen=True)
class Rates:
    """A model's prices in whole nano-dollars: per token (``$3 / MTok`` is 3,000) and per
    search."""

    input: int
    output: int
    cached_input: int | None = None
    cache_write: int | None = None
    search: int = 0

    def nano(self, billed: Billed) -> int:
        cached = self.input if self.cached_input is None else self.cached_input
        written = self.input if self.cache_write is None else self.cache_write
        plain = billed.input_tokens - billed.cached_input_tokens - billed.cache_write_tokens
        return (
            plain * self.input
            + billed.cached_input_tokens * cached
            + billed.cache_write_tokens * written
            + billed.output_tokens * self.output
            + billed.web_searches * self.search
        )


class Bill:
    """What a fake billed, request by request. Thread-safe (the fake serves on threads)."""

    def __init__(self, rates: Mapping[str, Rates] | None = None) -> None:
        self.rates = dict(rates or {})
        self._lock = threading.Lock()
        self._items: list[Billed] = []

    def add(self, billed: Billed) -> None:
        with self._lock:
            self._items.append(billed)

    @property
    def items(self) -> list[Billed]:
        with self._lock:
            return list(self._items)

    @property
    def nano(self) -> int:
        """The total at ``rates`` (a model without rates is a test's mistake: KeyError)."""
        return sum(self.rates[b.model].nano(b) for b in self.items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
