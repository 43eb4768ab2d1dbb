"""The journal of a module's agent loop: every model turn and every tool call with its result, as
events on the task's bus (durable and replayable, on SQLite and Redis alike).

It is the module's transcript (``agentfirm tasks transcript``, redacted) and what makes the loop
exactly-once: a module run again with the same brief (after a crash, or a budget refusal
mid-loop) finds its completed turns and tool calls here and replays them instead of paying for
them, or repeating a call, twice. Runs are told apart by ``key``, a digest of the messages the
loop started from: a revision (new notes, new upstream) starts a fresh journal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfirm.bus.base import Bus
from agentfirm.domain.models import Event
from agentfirm.domain.tools import ToolCall, ToolResult
from agentfirm.money import nano_to_float
from agentfirm.router.base import CallResult, Message, SentCall, Usage

TURN = "model.turn"
TOOL = "tool.called"
STARTED = "tool.started"
"""Journaled just before a tool runs: found after a crash without its result, the call is not
run again (at most once): nobody knows whether it took effect or what it answered, so the model
is told and decides."""
TURN_SENT = "model.turn.sent"
"""Journaled just before each attempt of a turn leaves the router, with the attempt's ledger id
(``SentCall``). Found after a crash without its answer, the last attempt is handed back to the
router, which takes the answer its provider kept, if any (OpenAI with ``openai_store``; one still
being generated is waited for, until its deadline from the mark's time): the turn is not asked
twice. Otherwise it is asked again (an answer lost is not an answer) and the transcript says so
with a ``TURN_LOST`` entry; what the lost request cost is the router's to book (a request that
had left is booked at its reservation, an upper bound, when the task is taken over). The turn's
repair ask (``repair``: after an answer that failed its schema) is marked and handed back the
same way, with the first ask it repairs."""
TURN_LOST = "model.turn.lost"
"""A turn asked and not answered — refused, failed, or cut off by a crash — and why: it is asked
again when the loop runs again."""
LOST_NOTE = (
    "the process stopped before this turn's answer was recorded: asked again; if its request "
    "had left, the ledger books it at its reservation (an upper bound)"
)
MAX_CONTENT_CHARS = 60_000
"""A tool result longer than this is cut in the journal (tools cap theirs below it)."""


def loop_key(messages: Sequence[Message]) -> str:
    """What identifies one loop run: a digest of the messages it started from."""
    hasher = hashlib.sha256()
    for message in messages:
        hasher.update(message.role.encode() + b"\x00" + message.content.encode() + b"\x00")
    return hasher.hexdigest()[:16]


def _call_json(call: ToolCall) -> dict[str, Any]:
    return {
        "id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "raw_arguments": call.raw_arguments,
        "signature": call.signature,
    }


def _call_of(data: dict[str, Any]) -> ToolCall:
    return ToolCall(
        data["id"], data["name"], data["arguments"], data["raw_arguments"], data["signature"]
    )


@dataclass(frozen=True)
class TurnRecord:
    turn: int
    messages: Sequence[Message]
    result: CallResult
    final: bool


@dataclass(frozen=True)
class ToolRecord:
    result: ToolResult
    malformed: bool


def _message_json(message: Message, redact: Callable[[str], str]) -> dict[str, Any]:
    return {"role": message.role, "content": redact(message.content)}


@dataclass
class Journal:
    """One module's journal on ``bus``; ``replayed`` holds what an earlier run of the same loop
    (same ``key``) completed. Build it with ``open``."""

    bus: Bus
    task_id: str
    module_id: str
    key: str
    redact: Callable[[str], str] = lambda s: s
    turns: dict[int, CallResult] = field(default_factory=dict)
    tools: dict[tuple[int, str], ToolRecord] = field(default_factory=dict)
    started: set[tuple[int, str]] = field(default_factory=set)
    """Tool calls that began (``STARTED``) in an earlier run."""
    sent: dict[int, SentCall | None] = field(default_factory=dict)
    """Turns asked (``TURN_SENT``) in an earlier run, unanswered: the last attempt of each (None
    in journals written before attempts were named)."""
    repairs: dict[int, SentCall] = field(default_factory=dict)
    """Of those, the turns whose repair was asked too: the last attempt of the repair."""
    _sent: int = 0
    """How many of the loop's messages the transcript already shows."""

    @classmethod
    async def open(
        cls,
        bus: Bus,
        task_id: str,
        module_id: str,
        messages: Sequence[Message],
        redact: Callable[[str], str] = lambda s: s,
    ) -> Journal:
        journal = cls(bus, task_id, module_id, loop_key(messages), redact)
        for event in await bus.replay(task_id):
            if event.module_id == module_id and event.payload.get("key") == journal.key:
                journal._load(event)
        return journal

    def _load(self, event: Event) -> None:
        payload = event.payload
        if event.type == TURN:
            self.turns[payload["turn"]] = _result_of(payload)
        elif event.type == STARTED:
            self.started.add((payload["turn"], payload["call_id"]))
        elif event.type == TURN_SENT:
            attempt = None
            if "call_id" in payload:
                attempt = SentCall(
                    payload["call_id"],
                    payload["provider"],
                    payload["model"],
                    at=event.ts,
                    repair=payload.get("repair", False),
                )
            if attempt is not None and attempt.repair:
                self.repairs[payload["turn"]] = attempt
            else:
                self.sent[payload["turn"]] = attempt
        elif event.type == TURN_LOST:
            (self.repairs if payload.get("repair") else self.sent).pop(payload["turn"], None)
        elif event.type == TOOL:
            result = ToolResult(
                payload["call_id"], payload["tool"], payload["content"], payload["is_error"]
            )
            self.tools[(payload["turn"], payload["call_id"])] = ToolRecord(
                result, payload.get("malformed", False)
            )

    async def turn(self, turn: int, history: Sequence[Message]) -> TurnRecord | None:
        """The turn as an earlier run completed it, or None: it must be called."""
        result = self.turns.get(turn)
        if result is None:
            return None
        self._sent = len(history)
        return TurnRecord(turn, history, result, final=False)

    def unanswered(self, turn: int) -> SentCall | None:
        """The last attempt of ``turn`` an earlier run sent and a crash cut off, if named, with
        the last attempt of its repair if one was sent after it (``SentCall.repaired``)."""
        first = self.sent.get(turn)
        repair = self.repairs.get(turn)
        if first is None or repair is None:
            return first
        return dataclasses.replace(first, repaired=repair)

    async def record_sent(self, turn: int, attempt: SentCall) -> None:
        """Mark an attempt of ``turn`` (or of its repair: ``attempt.repair``) as about to be
        sent (the router's ``Sent``). An earlier run's ask of it that has neither an answer nor
        a reason recorded was cut off by a crash, and its answer could not be had: the
        transcript says so first. A first ask asked again makes an earlier repair moot too."""
        if not attempt.repair and turn in self.sent:
            await self.record_lost(turn, LOST_NOTE)
        if turn in self.repairs:
            await self.record_lost(turn, LOST_NOTE, repair=True)
        payload = {
            "key": self.key,
            "turn": turn,
            "call_id": attempt.call_id,
            "provider": attempt.provider,
            "model": attempt.model,
            **({"repair": True} if attempt.repair else {}),
        }
        await self.bus.publish(self.task_id, TURN_SENT, payload, module_id=self.module_id)

    async def record_lost(self, turn: int, note: str, *, repair: bool = False) -> None:
        """Say in the transcript why ``turn`` (``repair``: its repair ask), asked, got no answer
        (it will be asked again)."""
        (self.repairs if repair else self.sent).pop(turn, None)
        payload: dict[str, Any] = {"key": self.key, "turn": turn, "note": self.redact(note)}
        if repair:
            payload["repair"] = True
        await self.bus.publish(self.task_id, TURN_LOST, payload, module_id=self.module_id)

    async def record_turn(self, record: TurnRecord) -> None:
        """Journal ``record``'s answer; ``recovered`` in the transcript when it is the answer a
        crash cut off, as its provider kept it (it was not asked again)."""
        new = [m for m in record.messages[self._sent :] if m.role in ("system", "user")]
        self._sent = len(record.messages)
        result = record.result
        cut_off = [self.sent.pop(record.turn, None), self.repairs.pop(record.turn, None)]
        recovered = any(a is not None and a.call_id == result.call_id for a in cut_off)
        self.turns[record.turn] = result
        await self.bus.publish(
            self.task_id,
            TURN,
            {
                "key": self.key,
                "turn": record.turn,
                "final": record.final,
                "sent": [_message_json(m, self.redact) for m in new],
                "tools_offered": not record.final,
                "recovered": recovered,
                **_result_json(result, self.redact),
            },
            module_id=self.module_id,
        )

    async def tool(self, turn: int, call_id: str) -> ToolRecord | None:
        return self.tools.get((turn, call_id))

    def was_started(self, turn: int, call_id: str) -> bool:
        """Whether an earlier run began this call and stopped before its result was
        journaled."""
        return (turn, call_id) in self.started

    async def record_start(self, turn: int, call: ToolCall) -> None:
        await self.bus.publish(
            self.task_id,
            STARTED,
            {"key": self.key, "turn": turn, "call_id": call.id, "tool": call.name},
            module_id=self.module_id,
        )

    async def record_tool(
        self,
        turn: int,
        call: ToolCall,
        answer: ToolResult,
        *,
        simulated: bool,
        denied: bool,
        malformed: bool,
        interrupted: bool = False,
        cut_off: bool = False,
    ) -> None:
        """Journal ``call``'s result. ``interrupted``: its outcome is unknown, as a crash or
        (``cut_off``) a stop cut it off before it answered; it is not run again."""
        self.tools[(turn, call.id)] = ToolRecord(answer, malformed)
        arguments = call.raw_arguments or json.dumps(call.arguments, ensure_ascii=False)
        await self.bus.publish(
            self.task_id,
            TOOL,
            {
                "key": self.key,
                "turn": turn,
                "call_id": call.id,
                "tool": call.name,
                "arguments": self.redact(arguments),
                "content": self.redact(answer.content[:MAX_CONTENT_CHARS]),
                "is_error": answer.is_error,
                "simulated": simulated,
                "denied": denied,
                "malformed": malformed,
                "interrupted": interrupted,
                **({"cut_off": True} if cut_off else {}),
            },
            module_id=self.module_id,
        )


def _result_json(result: CallResult, redact: Callable[[str], str]) -> dict[str, Any]:
    usage = result.usage
    return {
        "call_id": result.call_id,
        "tier": result.tier,
        "provider": result.provider,
        "model": result.model,
        "text": redact(result.text),
        "data": result.data,
        "tool_calls": [_call_json(c) for c in result.tool_calls],
        "usage": {
            "input_tokens": usage.input_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
            "web_searches": usage.web_searches,
        },
        "cost_nano": result.cost_nano,
        "cost_usd": nano_to_float(result.cost_nano),
        "latency_ms": result.latency_ms,
        "simulated": result.simulated,
        "attempts": result.attempts,
        "sources": list(result.sources),
    }


def _result_of(payload: dict[str, Any]) -> CallResult:
    return CallResult(
        call_id=payload["call_id"],
        tier=payload["tier"],
        provider=payload["provider"],
        model=payload["model"],
        text=payload["text"],
        data=payload["data"],
        usage=Usage(**payload["usage"]),
        cost_nano=payload["cost_nano"],
        latency_ms=payload["latency_ms"],
        simulated=payload["simulated"],
        attempts=list(payload["attempts"]),
        tool_calls=tuple(_call_of(c) for c in payload["tool_calls"]),
        # Journals written before sources were kept have none.
        sources=tuple(payload.get("sources", ())),
    )


def transcript(events: Sequence[Event], module_id: str | None = None) -> list[dict[str, Any]]:
    """The transcript of a task (or one module) from its events, in order: each model turn
    (``kind: model``: what was sent that turn, what came back, cost), each turn whose answer a
    crash lost (``kind: lost``: it was asked again) and each tool call (``kind: tool``: arguments
    and result; ``interrupted`` when a crash or a stop — ``cut_off`` — cut it off and it was not
    run again). Already
    redacted when journaled."""
    kinds = {TURN: "model", TOOL: "tool", TURN_LOST: "lost"}
    entries = []
    for event in events:
        if event.type not in kinds:
            continue
        if module_id is not None and event.module_id != module_id:
            continue
        payload = {k: v for k, v in event.payload.items() if k not in ("key", "cost_nano")}
        entries.append(
            {
                "kind": kinds[event.type],
                "module_id": event.module_id,
                "at": event.ts.isoformat(),
                **payload,
            }
        )
    return entries
