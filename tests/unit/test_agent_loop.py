"""The agent loop's own rules, on a real router (scripted provider) and a real SQLite bus: a
re-run replays the journal instead of calling again, side-effecting tools need consent, a
simulated model's tool calls are not run, and the transcript is redacted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.agent_loop import AgentLoop, Approve, deny_side_effects
from agentfirm.build_master.journal import TOOL, TURN, Journal, transcript
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.tools import ToolCall, ToolSpec
from agentfirm.errors import BudgetExceeded
from agentfirm.router.base import Message, ProviderRequest, ProviderResponse, SentCall, Usage
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.tools.catalog import ModuleTools
from tests.unit.test_router import ScriptedProvider, funded_task, make_router, store
from tests.unit.test_router_recover import KeepingProvider

__all__ = ["store"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}},
    "required": ["headline"],
}
MESSAGES = [Message("system", "You are terse."), Message("user", "Price the widget.")]
SECRET = "sk-live-SECRET-0001"


class Recorder:
    """A tool that counts its calls; ``side_effects`` as given."""

    def __init__(self, name: str = "price_of", *, side_effects: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.spec = ToolSpec(
            name,
            "The list price of a product.",
            {"type": "object", "properties": {"product": {"type": "string"}}},
            side_effects=side_effects,
        )

    async def call(self, arguments: dict[str, Any]) -> str:
        self.calls.append(arguments)
        return f"{arguments.get('product')}: 42 euros (key {SECRET})"


def asks(*calls: tuple[str, str]) -> ProviderResponse:
    return ProviderResponse(
        "",
        Usage(input_tokens=20, output_tokens=5),
        "m",
        tuple(ToolCall(cid, name, {"product": "widget"}, "") for cid, name in calls),
    )


ANSWER = ProviderResponse('{"headline": "42 euros"}', Usage(input_tokens=20, output_tokens=5), "m")


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SQLiteLogBus]:
    opened = SQLiteLogBus(tmp_path / "bus.db")
    await opened.open()
    yield opened
    await opened.close()


async def _loop(
    router: Router,
    bus: SQLiteLogBus,
    task_id: str,
    tool: Recorder,
    *,
    approve: Approve = deny_side_effects,
    call: Any = None,
) -> AgentLoop:
    journal = await Journal.open(
        bus, task_id, "pricing", MESSAGES, redact=lambda s: s.replace(SECRET, "[redacted]")
    )
    return AgentLoop(
        call=call or (lambda **kw: router.call(task_id=task_id, module_id="pricing", **kw)),
        tier="execution",
        output_schema=SCHEMA,
        max_tokens=512,
        tools=ModuleTools({tool.spec.name: tool}),
        max_turns=4,
        journal=journal,
        approve=approve,
    )


async def test_a_rerun_replays_completed_turns_and_tool_calls(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    """The budget refuses turn 2 and the loop stops; once budget is added and it runs again,
    turn 1 and its tool call come from the journal: the provider and the tool see each once."""
    alpha = ScriptedProvider("alpha", [asks(("c1", "price_of")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    tool = Recorder()
    turns = 0

    async def starve_second(**kw: Any) -> Any:
        nonlocal turns
        turns += 1
        if turns == 2:  # the human's ceiling is reached before turn 2
            await store.set_budget(task_id, (await store.get_budget(task_id)).spent_nano)
        return await router.call(task_id=task_id, module_id="pricing", **kw)

    with pytest.raises(BudgetExceeded):
        await (await _loop(router, bus, task_id, tool, call=starve_second)).run(MESSAGES)
    await store.set_budget(task_id, 10**9)  # budget added
    outcome = await (await _loop(router, bus, task_id, tool)).run(MESSAGES)

    assert outcome.data == {"headline": "42 euros"}
    assert len(alpha.requests) == 2  # turn 1 once, turn 2 once
    assert tool.calls == [{"product": "widget"}]
    rows = await store.list_ledger(task_id)
    assert [r.outcome for r in rows] == ["ok", "budget_refused", "ok"]
    # The replayed turn's tool result went to the model in turn 2, as on the first run.
    assert alpha.requests[1].messages[-1].tool_results[0].call_id == "c1"
    # The transcript says why turn 2 was asked twice, and does not call it a crash.
    entries = transcript(await bus.replay(task_id))
    assert [(e["kind"], e["turn"]) for e in entries] == [
        ("model", 1),
        ("tool", 1),
        ("lost", 2),
        ("model", 2),
    ]
    assert entries[2]["note"] == "refused for budget: nothing was sent"


async def test_a_side_effecting_tool_is_denied_without_consent_and_the_transcript_says_so(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    alpha = ScriptedProvider("alpha", [asks(("c1", "send_email")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    tool = Recorder("send_email", side_effects=True)

    await (await _loop(router, bus, task_id, tool)).run(MESSAGES)

    assert tool.calls == []
    [event] = [e for e in await bus.replay(task_id) if e.type == TOOL]
    assert event.payload["denied"]
    assert event.payload["content"].startswith("Denied")
    assert alpha.requests[1].messages[-1].tool_results[0].is_error


async def test_a_side_effecting_tool_runs_with_consent(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    alpha = ScriptedProvider("alpha", [asks(("c1", "send_email")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    tool = Recorder("send_email", side_effects=True)
    asked: list[str] = []

    async def yes(spec: ToolSpec, call: ToolCall) -> bool:
        asked.append(spec.name)
        return True

    await (await _loop(router, bus, task_id, tool, approve=yes)).run(MESSAGES)
    assert asked == ["send_email"]
    assert len(tool.calls) == 1


async def test_the_transcript_is_redacted(store: SQLiteStore, bus: SQLiteLogBus) -> None:
    alpha = ScriptedProvider("alpha", [asks(("c1", "price_of")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    await (await _loop(router, bus, task_id, Recorder())).run(MESSAGES)

    events = [e for e in await bus.replay(task_id) if e.type in (TURN, TOOL)]
    assert [e.type for e in events] == [TURN, TOOL, TURN]
    assert SECRET not in str([e.payload for e in events])
    assert "[redacted]" in events[1].payload["content"]


async def test_a_simulated_models_tool_calls_are_not_run(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    """The offline provider asks for one call, marked simulated; the tool is not run and the
    model answers on the next turn."""
    offline = OfflineProvider()
    offline.name = "alpha"
    router = make_router(store, offline)  # type: ignore[arg-type]
    task_id = await funded_task(store)
    tool = Recorder()
    outcome = await (await _loop(router, bus, task_id, tool)).run(MESSAGES)

    assert tool.calls == []
    assert outcome.turns == 2
    assert outcome.call.simulated
    [event] = [e for e in await bus.replay(task_id) if e.type == TOOL]
    assert event.payload["simulated"]
    assert "[simulated]" in event.payload["content"]


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs. Not ``KeyboardInterrupt``, which asyncio
    raises out of the loop from the tool call's own task (it stops the test runner)."""


class Crashing(Recorder):
    """Takes effect, then the process dies before the result is journaled."""

    async def call(self, arguments: dict[str, Any]) -> str:
        self.calls.append(arguments)
        raise Killed


class Blocking(Recorder):
    """Takes effect, then does not answer until it is cancelled."""

    def __init__(self, name: str, *, side_effects: bool = False) -> None:
        super().__init__(name, side_effects=side_effects)
        self.started = asyncio.Event()

    async def call(self, arguments: dict[str, Any]) -> str:
        self.calls.append(arguments)
        self.started.set()
        await asyncio.Event().wait()
        raise AssertionError("not reached")


async def test_a_call_cut_off_by_a_stop_is_journaled_so_and_not_repeated(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    """A module stopped (no grace left) while a tool call runs: the call is cut off and the
    journal says so at once, in the transcript too; run again, the loop does not repeat it
    and tells the model its outcome is unknown, and why."""
    alpha = ScriptedProvider("alpha", [asks(("c1", "send_email")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)

    async def yes(spec: ToolSpec, call: ToolCall) -> bool:
        return True

    blocking = Blocking("send_email", side_effects=True)
    loop = await _loop(router, bus, task_id, blocking, approve=yes)
    running = asyncio.ensure_future(loop.run(MESSAGES))
    await blocking.started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    again = Recorder("send_email", side_effects=True)
    await (await _loop(router, bus, task_id, again, approve=yes)).run(MESSAGES)

    assert again.calls == []
    [entry] = [e for e in transcript(await bus.replay(task_id)) if e["kind"] == "tool"]
    assert entry["interrupted"]
    assert entry["cut_off"]
    [result] = alpha.requests[1].messages[-1].tool_results
    assert result.is_error
    assert "was cut off: the run was stopped" in result.content
    assert "may or may not have taken effect" in result.content


async def test_a_side_effecting_call_cut_off_by_a_crash_is_not_repeated(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    """At most once: the call was journaled as started, its result never was; the rerun tells
    the model it may or may not have taken effect instead of running it again."""
    alpha = ScriptedProvider("alpha", [asks(("c1", "send_email")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)

    async def yes(spec: ToolSpec, call: ToolCall) -> bool:
        return True

    crashing = Crashing("send_email", side_effects=True)
    with pytest.raises(Killed):
        await (await _loop(router, bus, task_id, crashing, approve=yes)).run(MESSAGES)
    again = Recorder("send_email", side_effects=True)
    await (await _loop(router, bus, task_id, again, approve=yes)).run(MESSAGES)

    assert len(crashing.calls) == 1
    assert again.calls == []
    [result] = alpha.requests[1].messages[-1].tool_results
    assert result.is_error
    assert "not run twice" in result.content
    assert "may or may not have taken effect" in result.content


async def test_a_read_only_call_cut_off_by_a_crash_is_not_repeated(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    """Every tool runs at most once: a read-only call cut off before its result was journaled
    is not run again either; the model is told its outcome is unknown (and may ask again), and
    the transcript shows the call as interrupted."""
    alpha = ScriptedProvider("alpha", [asks(("c1", "price_of")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)

    crashing = Crashing("price_of")
    with pytest.raises(Killed):
        await (await _loop(router, bus, task_id, crashing)).run(MESSAGES)
    again = Recorder("price_of")
    await (await _loop(router, bus, task_id, again)).run(MESSAGES)

    assert len(crashing.calls) == 1
    assert again.calls == []
    [result] = alpha.requests[1].messages[-1].tool_results
    assert result.is_error
    assert "outcome is unknown" in result.content
    assert "call it again if you still need" in result.content
    [entry] = [e for e in transcript(await bus.replay(task_id)) if e["kind"] == "tool"]
    assert entry["interrupted"]


async def test_a_turn_cut_off_by_a_crash_is_asked_again_and_the_transcript_says_so(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    """A turn whose answer was never journaled has no answer to replay: it is asked again, and
    the transcript shows the ask that was lost (the ledger books what it cost)."""
    alpha = ScriptedProvider("alpha", [asks(("c1", "price_of")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    tool = Recorder()
    turns = 0

    async def die_on_second(**kw: Any) -> Any:
        nonlocal turns
        turns += 1
        if turns == 2:
            journal_sent = kw["sent"]

            async def then_die(attempt: SentCall) -> None:
                await journal_sent(attempt)
                raise KeyboardInterrupt  # stands for SIGKILL once turn 2 is marked sent

            kw["sent"] = then_die
        return await router.call(task_id=task_id, module_id="pricing", **kw)

    with pytest.raises(KeyboardInterrupt):
        await (await _loop(router, bus, task_id, tool, call=die_on_second)).run(MESSAGES)
    outcome = await (await _loop(router, bus, task_id, tool)).run(MESSAGES)

    assert outcome.data == {"headline": "42 euros"}
    assert len(alpha.requests) == 2
    assert tool.calls == [{"product": "widget"}]
    entries = transcript(await bus.replay(task_id))
    assert [(e["kind"], e["turn"]) for e in entries] == [
        ("model", 1),
        ("tool", 1),
        ("lost", 2),
        ("model", 2),
    ]
    assert "process stopped" in entries[2]["note"]


class Keeping(KeepingProvider):
    """Keeps each answer under its call id as it gives it, as OpenAI does with
    ``openai_store``."""

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        answer = await super().complete(request)
        self.kept[request.call_id or ""] = answer
        return answer


async def test_a_repair_cut_off_by_a_crash_is_taken_from_the_providers_record_not_asked_again(
    store: SQLiteStore, bus: SQLiteLogBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer fails its schema and the repair answers; the process dies before the
    turn is journaled. Both asks were journaled as sent, the repair marked so: the rerun takes
    both answers from the provider's record, and neither is asked again."""
    invalid = ProviderResponse("not json", Usage(input_tokens=20, output_tokens=5), "m")
    alpha = Keeping("alpha", [invalid, ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    publish = bus.publish

    async def die_before_the_turn(task_id: str, type: str, *args: Any, **kw: Any) -> Any:
        if type == TURN:
            raise KeyboardInterrupt  # stands for SIGKILL before the turn's answer is journaled
        return await publish(task_id, type, *args, **kw)

    monkeypatch.setattr(bus, "publish", die_before_the_turn)
    with pytest.raises(KeyboardInterrupt):
        await (await _loop(router, bus, task_id, Recorder())).run(MESSAGES)
    monkeypatch.undo()
    outcome = await (await _loop(router, bus, task_id, Recorder())).run(MESSAGES)

    assert outcome.data == {"headline": "42 euros"}
    assert len(alpha.requests) == 2  # the first ask and its repair, each once
    [entry] = transcript(await bus.replay(task_id))
    assert (entry["kind"], entry["turn"], entry["recovered"]) == ("model", 1, True)
    rows = await store.list_ledger(task_id)
    assert [r.outcome for r in rows] == ["ok", "ok"]


class Refused(Recorder):
    """A tool whose own model call the budget refuses (as ``web_search``'s grounded call)."""

    async def call(self, arguments: dict[str, Any]) -> str:
        self.calls.append(arguments)
        raise BudgetExceeded(
            task_id="t", needed_usd=Decimal(1), spent_usd=Decimal(0), ceiling_usd=Decimal(0)
        )


async def test_a_tool_refused_for_budget_pauses_the_loop_and_is_said_refused_on_the_rerun(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    """Nothing ran, so the rerun does not call its outcome unknown: the model reads that it was
    refused and may ask again."""
    alpha = ScriptedProvider("alpha", [asks(("c1", "price_of")), ANSWER])
    router = make_router(store, alpha)
    task_id = await funded_task(store)

    with pytest.raises(BudgetExceeded):
        await (await _loop(router, bus, task_id, Refused())).run(MESSAGES)
    again = Recorder()
    await (await _loop(router, bus, task_id, again)).run(MESSAGES)

    assert again.calls == []
    [result] = alpha.requests[1].messages[-1].tool_results
    assert result.is_error
    assert result.content.startswith("price_of was refused for budget before it ran")
