"""The ``offline`` provider: simulated replies, no network, no key.

Replies are deterministic (the same model and messages always give the same text), satisfy the
request's JSON schema, and are built from the words of the last user message — every free-text
string starts with ``[simulated]`` — so a stitched document reads plausibly and is plainly a
simulation. It drives the demo, dry-run cost estimates and users' own persona tests. It has no
web search: ``ProviderRequest.web_search`` is ignored, so offline research works from the task's
attached documents alone.

Tools: offered tools and no tool result yet in the chat, it asks for one tool call (the first tool
without side effects, arguments generated from its schema) so the agent loop runs for real in the
demo; once a result is in the chat it answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from agentfirm.domain.tools import ToolCall, ToolSpec
from agentfirm.router.base import Message, ProviderRequest, ProviderResponse, Usage
from agentfirm.router.tokens import (
    CHARS_PER_TOKEN,
    estimate_messages,
    estimate_tokens,
    estimate_tools,
)

MARK = "[simulated]"

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'-]*[A-Za-z0-9]")
# Words too common to say what a prompt is about.
_STOPWORD_TEXT = (
    "the and for with that this from into onto over under about your you our are was were "
    "will would should could can may might must not but its it's his her their them they then "
    "than there here what which who whom when where why how all any each every some such only "
    "also very just more most other same own both few too has have had having been being does "
    "did doing out off again once please using use make made per via simulated json schema "
    "object array string reply answer return field fields "
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_FALLBACK_WORDS = ("draft", "analysis", "findings", "scope", "evidence")
_OPENERS = (
    "This part covers",
    "The main point concerns",
    "Evidence so far points to",
    "A practical next step is to review",
    "Open questions remain about",
    "The work centres on",
)
_SHORT_NAMES = ("title", "name", "label", "heading", "category", "kind", "type", "status", "tag")
_ID_NAMES = ("id", "key", "slug", "ref")
_PATTERN_TRIES = ("a", "A", "0", "1", "a1", "A1", "x", "sample", "sample-1", "SAMPLE")


@dataclass(frozen=True)
class _Size:
    """How much to write; the provider tries sizes in order until the reply fits ``max_tokens``."""

    items: int
    words: int
    optional: bool


_SIZES = (
    _Size(items=3, words=24, optional=True),
    _Size(items=2, words=12, optional=True),
    _Size(items=1, words=6, optional=True),
    _Size(items=0, words=2, optional=False),
)
_MAX_DEPTH = 8


def _digest(request: ProviderRequest) -> bytes:
    hasher = hashlib.sha256(request.model.encode())
    for message in request.messages:
        hasher.update(b"\x00" + message.role.encode() + b"\x00" + message.content.encode())
    return hasher.digest()


def _topic_words(messages: Sequence[Message]) -> list[str]:
    last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
    seen: dict[str, None] = {}
    for word in _WORD.findall(last_user):
        lowered = word.lower()
        if len(lowered) > 2 and lowered not in _STOPWORDS:
            seen.setdefault(lowered, None)
    return list(seen) or list(_FALLBACK_WORDS)


class _Text:
    """Readable phrases from the prompt's words, taken in their original order from a cursor
    (so "prior art search" stays together) and wrapping around."""

    def __init__(self, words: list[str], rng: random.Random) -> None:
        self._words = words
        self._rng = rng
        self._cursor = rng.randrange(len(words))

    def take(self, count: int) -> list[str]:
        out = []
        for _ in range(max(count, 1)):
            out.append(self._words[self._cursor % len(self._words)])
            self._cursor += 1
        return out

    def title(self, count: int) -> str:
        return " ".join(word.capitalize() for word in self.take(count))

    def slug(self, count: int) -> str:
        return "-".join(self.take(count))

    def prose(self, words: int) -> str:
        """``[simulated]`` and sentences totalling about ``words`` topic words."""
        sentences = []
        remaining = max(words, 1)
        while remaining > 0:
            count = min(remaining, self._rng.randint(3, 5))
            opener = self._rng.choice(_OPENERS)
            sentences.append(f"{opener} {' '.join(self.take(count))}.")
            remaining -= count
        return f"{MARK} " + " ".join(sentences)


def _pointer(root: Any, ref: str) -> Any:
    if not ref.startswith("#"):
        return {}  # remote refs are out of reach offline; an empty schema accepts anything
    node = root
    for part in ref[1:].split("/")[1:]:
        key = part.replace("~1", "/").replace("~0", "~")
        node = node[int(key)] if isinstance(node, list) else node.get(key, {})
    return node


class _Generator:
    """Builds one JSON value satisfying a schema (the keywords agent output schemas use)."""

    def __init__(self, root: dict[str, Any], text: _Text, size: _Size, rng: random.Random):
        self._root = root
        self._text = text
        self._size = size
        self._rng = rng

    def value(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        if schema is True or not isinstance(schema, dict):
            return self._text.prose(self._size.words) if schema is True else None
        schema = self._resolve(schema, depth)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return self._rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [o for o in schema[key] if not (isinstance(o, dict) and _is_null(o))]
                return self.value((options or schema[key])[0], name, depth + 1)
        kind = _kind(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return _integer(schema, self._rng)
        if kind == "number":
            return _number(schema, self._rng)
        if kind == "boolean":
            return self._rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name)

    def _resolve(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        while "$ref" in schema and depth <= _MAX_DEPTH * 4:
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**_pointer(self._root, schema["$ref"]), **siblings}
            depth += 1
        if schema.get("allOf"):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part, depth + 1) if isinstance(part, dict) else {}
                merged["properties"] = {
                    **merged.get("properties", {}),
                    **part.get("properties", {}),
                }
                merged["required"] = [*merged.get("required", []), *part.get("required", [])]
                merged.update(
                    {k: v for k, v in part.items() if k not in ("properties", "required")}
                )
            schema = merged
        return schema

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = schema.get("properties", {})
        required = list(dict.fromkeys(schema.get("required", [])))
        optional = self._size.optional and depth < _MAX_DEPTH
        keys = [k for k in props if optional or k in required]
        keys += [k for k in required if k not in props]
        out = {key: self.value(props.get(key, {"type": "string"}), key, depth + 1) for key in keys}
        extra = schema.get("additionalProperties", True)
        while len(out) < schema.get("minProperties", 0) and extra is not False:
            out[f"note_{len(out) + 1}"] = self.value(
                extra if isinstance(extra, dict) else {"type": "string"}, "note", depth + 1
            )
        return out

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix = [self.value(s, name, depth + 1) for s in schema.get("prefixItems", [])]
        low = max(schema.get("minItems", 0), len(prefix))
        high = schema.get("maxItems", max(low, self._size.items))
        count = min(max(self._size.items if depth < _MAX_DEPTH else 0, low), high)
        items = schema.get("items", {})
        if items is False:
            return prefix
        item_schema = self._resolve(items, depth + 1) if isinstance(items, dict) else {}
        if schema.get("uniqueItems") and item_schema.get("enum"):
            choices = item_schema["enum"]
            return prefix + self._rng.sample(choices, min(count - len(prefix), len(choices)))
        out = list(prefix)
        while len(out) < count:
            out.append(self.value(item_schema, name, depth + 1))
        self._spread_enums(item_schema, out[len(prefix) :], depth)
        return out

    def _spread_enums(self, item_schema: dict[str, Any], items: list[Any], depth: int) -> None:
        """In a list of objects, walk each enum-valued property through its values in order, so
        a list that must cover a set (one verdict per checklist item) covers it."""
        props = item_schema.get("properties", {}) if _kind(item_schema) == "object" else {}
        for key, prop in props.items():
            choices = self._resolve(prop, depth + 1).get("enum") if isinstance(prop, dict) else None
            if not choices:
                continue
            for index, item in enumerate(items):
                if isinstance(item, dict) and key in item:
                    item[key] = choices[index % len(choices)]

    def _string(self, schema: dict[str, Any], name: str) -> str:
        special = _formatted(schema.get("format"), self._text, self._rng)
        lowered = name.lower()
        if special is not None:
            text = special
        elif lowered in _ID_NAMES or lowered.endswith("_id"):
            text = self._text.slug(2)
        elif any(word in lowered for word in _SHORT_NAMES) or schema.get("maxLength", 999) < 60:
            text = f"{MARK} {self._text.title(min(4, self._size.words))}"
        else:
            text = self._text.prose(self._size.words)
        while len(text) < schema.get("minLength", 0):
            text += " " + " ".join(self._text.take(3))
        if "maxLength" in schema:
            text = text[: schema["maxLength"]].rstrip() or text[: schema["maxLength"]]
        pattern = schema.get("pattern")
        if pattern and not re.search(pattern, text):
            fits = (c for c in (self._text.slug(1), *_PATTERN_TRIES) if re.search(pattern, c))
            text = next(fits, text)
        return text


def _is_null(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null"


def _kind(schema: dict[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        return next((t for t in declared if t != "null"), "null")
    if isinstance(declared, str):
        return declared
    if {"properties", "required", "additionalProperties", "minProperties"} & schema.keys():
        return "object"
    if {"items", "prefixItems", "minItems", "maxItems"} & schema.keys():
        return "array"
    if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & schema.keys():
        return "number"
    return "string"


def _bounds(schema: dict[str, Any], integer: bool) -> tuple[float, float]:
    low: float | None = schema.get("minimum")
    high: float | None = schema.get("maximum")
    ex_low = schema.get("exclusiveMinimum")
    if ex_low is not None:
        nudged = math.floor(ex_low) + 1 if integer else ex_low
        low = nudged if low is None else max(low, nudged)
    ex_high = schema.get("exclusiveMaximum")
    if ex_high is not None:
        nudged = math.ceil(ex_high) - 1 if integer else ex_high
        high = nudged if high is None else min(high, nudged)
    if low is None:
        return (1.0, 10.0) if high is None else (high - 9, high)
    return (low, low + 9) if high is None else (low, high)


def _integer(schema: dict[str, Any], rng: random.Random) -> int:
    low, high = _bounds(schema, integer=True)
    lo, hi = math.ceil(low), math.floor(high)
    step = schema.get("multipleOf")
    if isinstance(step, int) and step > 0 and math.ceil(lo / step) <= math.floor(hi / step):
        return rng.randint(math.ceil(lo / step), math.floor(hi / step)) * step
    return rng.randint(lo, max(lo, hi))


def _number(schema: dict[str, Any], rng: random.Random) -> float | int:
    low, high = _bounds(schema, integer=False)
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0 and math.ceil(low / step) <= high / step:
        multiple: float | int = math.ceil(low / step) * step
        return multiple
    # Stay off the edges so exclusive bounds hold after rounding.
    value = low + (high - low) * rng.uniform(0.25, 0.75)
    rounded = round(value, 2)
    return rounded if low <= rounded <= high and rounded not in (low, high) else value


def _formatted(fmt: Any, text: _Text, rng: random.Random) -> str | None:
    day = rng.randint(1, 28)
    if fmt == "date-time":
        return f"2025-01-{day:02d}T09:00:00Z"
    if fmt == "date":
        return f"2025-01-{day:02d}"
    if fmt == "time":
        return "09:00:00Z"
    if fmt == "email":
        return f"{text.slug(1)}@example.com"
    if fmt in ("uri", "url", "iri", "uri-reference"):
        return f"https://example.com/{text.slug(2)}"
    if fmt == "uuid":
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return None


def _tool_call(
    request: ProviderRequest, words: list[str], seed: int, digest: bytes
) -> ToolCall | None:
    """The one tool call a simulated model makes before answering: none once any tool result is
    in the chat, or when no offered tool is free of side effects."""
    if any(m.role == "tool" for m in request.messages):
        return None
    spec: ToolSpec | None = next((t for t in request.tools if not t.side_effects), None)
    if spec is None:
        return None
    rng = random.Random(seed)
    # Required arguments only: a simulated call asks for what the tool needs, nothing more.
    arguments = _Generator(spec.input_schema, _Text(words, rng), _SIZES[-1], rng).value(
        spec.input_schema
    )
    if not isinstance(arguments, dict):
        arguments = {}
    raw = json.dumps(arguments, ensure_ascii=False)
    return ToolCall(f"sim_{digest[:6].hex()}", spec.name, arguments, raw)


def _paragraph(text: _Text, max_tokens: int) -> str:
    body = f"**{MARK}** Notes on {' '.join(text.take(4))}. " + text.prose(40).removeprefix(
        f"{MARK} "
    )
    limit = max_tokens * CHARS_PER_TOKEN
    if len(body) <= limit:
        return body
    cut = body[:limit]
    return cut.rsplit(" ", 1)[0] if " " in cut else cut


Sleep = Callable[[float], Awaitable[None]]


class OfflineProvider:
    """Deterministic simulated provider. ``latency_ms`` is the (min, max) simulated latency per
    call, drawn from the prompt's hash and awaited with ``sleep``."""

    name = "offline"
    simulated = True

    def __init__(self, latency_ms: tuple[int, int] = (0, 0), sleep: Sleep = asyncio.sleep) -> None:
        self._latency_ms = latency_ms
        self._sleep = sleep

    def latency_for(self, request: ProviderRequest) -> int:
        """The simulated latency of ``request`` in milliseconds, within ``latency_ms``."""
        low, high = self._latency_ms
        draw = int.from_bytes(_digest(request)[8:16], "big")
        return low + draw % (high - low + 1)

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        """A reply satisfying ``request.output_schema`` (else a short markdown paragraph) whose
        estimated size never exceeds ``max_tokens``: schema output shrinks (fewer items, shorter
        strings, optional fields dropped) to fit, and stays valid even when its smallest form
        does not fit; its reported output tokens are capped at ``max_tokens``."""
        digest = _digest(request)
        await self._sleep(self.latency_for(request) / 1000)
        seed = int.from_bytes(digest[:8], "big")
        words = _topic_words(request.messages)
        call = _tool_call(request, words, seed, digest)
        if call is not None:
            text = f"{MARK} Looking this up with {call.name} first."
            usage = Usage(
                input_tokens=estimate_messages(request.messages) + estimate_tools(request.tools),
                output_tokens=min(estimate_tokens(text + call.raw_arguments), request.max_tokens),
            )
            return ProviderResponse(text, usage, request.model, (call,))
        if request.output_schema is None:
            reply = _paragraph(_Text(words, random.Random(seed)), request.max_tokens)
        else:
            reply = self._structured(request.output_schema, words, seed, request.max_tokens)
        usage = Usage(
            input_tokens=estimate_messages(request.messages) + estimate_tools(request.tools),
            output_tokens=min(estimate_tokens(reply), request.max_tokens),
        )
        return ProviderResponse(text=reply, usage=usage, model=request.model)

    @staticmethod
    def _structured(schema: dict[str, Any], words: list[str], seed: int, max_tokens: int) -> str:
        reply = ""
        for size in _SIZES:
            rng = random.Random(seed)
            value = _Generator(schema, _Text(words, rng), size, rng).value(schema)
            reply = json.dumps(value, indent=2, ensure_ascii=False)
            if estimate_tokens(reply) <= max_tokens:
                break
        return reply
