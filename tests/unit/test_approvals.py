"""Approvals as a core API: StoreDecider against a real SQLite store and bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleSpec, Plan, Task, TaskSpec, TaskStatus
from agentfirm.errors import BadInput, NotFound
from agentfirm.ids import new_id
from agentfirm.master.approvals import StoreDecider
from agentfirm.master.decisions import BudgetDecision, PlanDecision, ReviewDecision
from agentfirm.master.estimate import Estimate, ModuleEstimate
from agentfirm.money import usd_to_nano
from agentfirm.secrets import Redactor
from agentfirm.store.sqlite import SQLiteStore

S = TaskStatus
T = TypeVar("T")
PLAN = Plan(
    modules=[
        ModuleSpec(id="research", tier="execution"),
        ModuleSpec(id="analysis", tier="reasoning", depends_on=["research"]),
        ModuleSpec(id="summary", tier="utility", depends_on=["analysis"]),
    ],
    waves=[["research"], ["analysis"], ["summary"]],
)
ESTIMATE = Estimate(
    tuple(
        ModuleEstimate(m.id, m.tier, usd_to_nano("0.10"), usd_to_nano("0.30")) for m in PLAN.modules
    )
)
TO_REVIEW = [S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED, S.HANDED_OFF]
TO_REVIEW += [S.EXECUTING, S.AWAITING_REVIEW]


@dataclass
class Side:
    """One process's view: its own connections to the shared files, and its decider."""

    store: SQLiteStore
    bus: SQLiteLogBus
    decider: StoreDecider


async def _open(data: Path) -> Side:
    store, bus = SQLiteStore(data / "agentfirm.db"), SQLiteLogBus(data / "bus.db")
    await store.open()
    await bus.open()
    return Side(
        store,
        bus,
        StoreDecider(store, bus, redact=Redactor().redact, poll_interval=0.05, details_grace=0.5),
    )


@pytest.fixture
async def side(tmp_path: Path) -> AsyncIterator[Side]:
    opened = await _open(tmp_path)
    yield opened
    await opened.bus.close()
    await opened.store.close()


@pytest.fixture
async def other(tmp_path: Path) -> AsyncIterator[Side]:
    opened = await _open(tmp_path)
    yield opened
    await opened.bus.close()
    await opened.store.close()


async def _task(side: Side, path: list[TaskStatus]) -> Task:
    task_id = new_id("t")
    spec = TaskSpec(task_id=task_id, request="r", persona="p", plan=PLAN, budget_nano=0)
    await side.store.create_task(Task(id=task_id, request="r", persona="p", spec=spec), actor="t")
    for status in path:
        await side.store.transition(task_id, status, actor="test")
    return await side.store.get_task(task_id)


async def _plan_task(side: Side) -> Task:
    return await _task(side, [S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL])


async def _asked(side: Side, task_id: str, *, after_seq: int = 0) -> str:
    """The id of the next approval the task asks (awaited on the bus, not polled)."""
    async for event in side.bus.subscribe(task_id, after_seq=after_seq):
        if event.type == "approval.requested":
            return str(event.payload["approval_id"])
    raise AssertionError("the bus closed")


async def _asking(side: Side, task_id: str, work: Awaitable[T]) -> tuple[asyncio.Task[T], str]:
    waiter = asyncio.ensure_future(work)
    return waiter, await asyncio.wait_for(_asked(side, task_id), 10)


async def _ask_plan(side: Side, task: Task) -> tuple[asyncio.Task[PlanDecision], str]:
    work = side.decider.approve_plan(task, PLAN, ESTIMATE, usd_to_nano("2"))
    return await _asking(side, task.id, work)


# ------------------------------------------------------------------ plan
async def test_plan_approval_waits_for_decide_and_takes_its_budget(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    assert not waiter.done()
    await side.decider.decide(approval_id, "approved", actor="cli:ann", budget_usd="3.50")

    decision = await asyncio.wait_for(waiter, 5)
    assert decision.approved
    assert decision.budget_nano == usd_to_nano("3.50")
    assert "cli:ann" in decision.reason


async def test_plan_approved_without_a_budget_keeps_the_proposed_one(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    await side.decider.decide(approval_id, "approved", actor="cli:ann")

    assert (await asyncio.wait_for(waiter, 5)).budget_nano == usd_to_nano("2")


async def test_rejected_plan_is_not_approved(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    await side.decider.decide(approval_id, "rejected", actor="cli:ann", notes="too dear")

    decision = await asyncio.wait_for(waiter, 5)
    assert not decision.approved
    assert "too dear" in decision.reason


async def test_plan_payload_has_what_a_front_end_shows(side: Side) -> None:
    task = await _plan_task(side)
    waiter, _approval_id = await _ask_plan(side, task)

    (approval,) = await side.decider.pending(task.id)
    waiter.cancel()
    payload = approval.payload
    assert approval.kind == "plan"
    assert [m["id"] for m in payload["modules"]] == ["research", "analysis", "summary"]
    assert payload["waves"] == [["research"], ["analysis"], ["summary"]]
    assert payload["estimate"]["expected_usd"] == pytest.approx(0.30)
    assert payload["estimate"]["worst_usd"] == pytest.approx(0.90)
    assert payload["suggested_budget_usd"] >= payload["estimate"]["worst_usd"]
    assert payload["budget_usd"] == 2.0
    assert payload["question"]


async def test_deciding_publishes_the_decision_with_its_parameters(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    await side.decider.decide(approval_id, "approved", actor="cli:ann", budget_usd=4)
    await waiter

    (decided,) = [e for e in await side.bus.replay(task.id) if e.type == "approval.decided"]
    assert decided.payload["approval_id"] == approval_id
    assert decided.payload["budget_nano"] == usd_to_nano("4")
    assert decided.payload["actor"] == "cli:ann"


# ------------------------------------------------------------------ bad decisions
async def test_deciding_twice_is_bad_input(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)
    await side.decider.decide(approval_id, "approved", actor="cli:ann")
    await waiter

    with pytest.raises(BadInput, match="already decided"):
        await side.decider.decide(approval_id, "rejected", actor="cli:bob")


async def test_an_unknown_approval_is_not_found(side: Side) -> None:
    await _plan_task(side)

    with pytest.raises(NotFound, match="ap_nope"):
        await side.decider.decide("ap_nope", "approved", actor="cli:ann")


@pytest.mark.parametrize("budget", ["0", "-1", "abc", "nan", "inf", "1e12"])
async def test_a_budget_that_is_not_a_sane_positive_amount_is_bad_input(
    side: Side, budget: str
) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    with pytest.raises(BadInput, match="budget"):
        await side.decider.decide(approval_id, "approved", actor="cli:ann", budget_usd=budget)
    assert [a.id for a in await side.decider.pending(task.id)] == [approval_id]
    waiter.cancel()


async def test_an_unknown_decision_is_bad_input(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    with pytest.raises(BadInput, match="maybe"):
        await side.decider.decide(approval_id, "maybe", actor="cli:ann")
    waiter.cancel()


async def test_a_plan_cannot_be_sent_back_for_revision(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    with pytest.raises(BadInput, match="cannot be revise"):
        await side.decider.decide(approval_id, "revise", actor="cli:ann")
    waiter.cancel()


async def test_a_decision_for_a_finished_task_is_bad_input(side: Side) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)
    waiter.cancel()
    await side.store.transition(task.id, S.ABORTED, actor="test")

    with pytest.raises(BadInput, match="aborted"):
        await side.decider.decide(approval_id, "approved", actor="cli:ann")


# ------------------------------------------------------------------ budget and review
async def _budget_task(side: Side) -> Task:
    task = await _task(side, [*TO_REVIEW[:-1], S.AWAITING_BUDGET])
    await side.store.set_budget(task.id, usd_to_nano("1"))
    return task


INFO: dict[str, Any] = {"spent_usd": 0.95, "ceiling_usd": 1.0, "needed_usd": 0.2}


async def test_an_approved_budget_question_raises_the_ceiling_to_the_given_one(
    side: Side,
) -> None:
    task = await _budget_task(side)
    waiter, approval_id = await _asking(side, task.id, side.decider.budget_exceeded(task, INFO))

    await side.decider.decide(approval_id, "approved", actor="cli:ann", budget_usd="2.5")

    assert await asyncio.wait_for(waiter, 5) == BudgetDecision(
        usd_to_nano("2.5"), "approved by cli:ann"
    )


async def test_a_budget_question_refuses_a_ceiling_not_above_the_current_one(side: Side) -> None:
    task = await _budget_task(side)
    waiter, approval_id = await _asking(side, task.id, side.decider.budget_exceeded(task, INFO))

    with pytest.raises(BadInput, match="above the current"):
        await side.decider.decide(approval_id, "approved", actor="cli:ann", budget_usd="0.5")
    waiter.cancel()


async def test_an_aborted_budget_question_adds_no_budget(side: Side) -> None:
    task = await _budget_task(side)
    waiter, approval_id = await _asking(side, task.id, side.decider.budget_exceeded(task, INFO))

    await side.decider.decide(approval_id, "aborted", actor="cli:ann")

    assert (await asyncio.wait_for(waiter, 5)).new_ceiling_nano is None


async def test_a_revision_returns_its_notes_and_modules(side: Side) -> None:
    task = await _task(side, TO_REVIEW)
    waiter, approval_id = await _asking(side, task.id, side.decider.review_draft(task, "# Draft"))

    await side.decider.decide(
        approval_id, "revise", actor="cli:ann", notes="deeper", modules=["analysis"]
    )

    assert await asyncio.wait_for(waiter, 5) == ReviewDecision("revise", "deeper", ("analysis",))


async def test_revising_an_unknown_module_is_bad_input(side: Side) -> None:
    task = await _task(side, TO_REVIEW)
    waiter, approval_id = await _asking(side, task.id, side.decider.review_draft(task, "# Draft"))

    with pytest.raises(BadInput, match="nosuch"):
        await side.decider.decide(approval_id, "revise", actor="cli:ann", modules=["nosuch"])
    waiter.cancel()


async def test_the_review_payload_carries_the_draft(side: Side) -> None:
    task = await _task(side, TO_REVIEW)
    waiter, _approval_id = await _asking(
        side, task.id, side.decider.review_draft(task, "# Draft\nbody")
    )

    (approval,) = await side.decider.pending(task.id)
    waiter.cancel()
    assert approval.payload["draft_markdown"] == "# Draft\nbody"
    assert approval.payload["modules"] == ["research", "analysis", "summary"]


# ------------------------------------------------------------------ across processes and restarts
async def test_a_decision_taken_by_another_process_wakes_the_waiter(
    side: Side, other: Side
) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)

    await other.decider.decide(approval_id, "approved", actor="cli:bob", budget_usd="3")

    decision = await asyncio.wait_for(waiter, 5)
    assert decision.budget_nano == usd_to_nano("3")
    assert "cli:bob" in decision.reason


async def test_a_restarted_task_asks_with_its_pending_approval_again(
    side: Side, other: Side
) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)
    waiter.cancel()  # the process dies while waiting

    again = asyncio.ensure_future(other.decider.approve_plan(task, PLAN, ESTIMATE, 1))
    await other.decider.decide(approval_id, "approved", actor="cli:ann")

    assert (await asyncio.wait_for(again, 5)).approved
    assert [a.id for a in await side.store.list_approvals(task.id)] == [approval_id]


async def test_a_decision_taken_while_nobody_waited_is_used_when_the_task_asks_again(
    side: Side, other: Side
) -> None:
    task = await _plan_task(side)
    waiter, approval_id = await _ask_plan(side, task)
    waiter.cancel()
    await other.decider.decide(approval_id, "approved", actor="cli:ann", budget_usd="7")

    decision = await asyncio.wait_for(other.decider.approve_plan(task, PLAN, ESTIMATE, 1), 5)

    assert decision.budget_nano == usd_to_nano("7")
    assert len(await side.store.list_approvals(task.id)) == 1


async def test_a_new_wait_asks_a_new_question(side: Side) -> None:
    task = await _task(side, TO_REVIEW)
    waiter, first = await _asking(side, task.id, side.decider.review_draft(task, "# v1"))
    await side.decider.decide(first, "revise", actor="cli:ann")
    await waiter
    for status in (S.REVISING, S.EXECUTING, S.AWAITING_REVIEW):
        await side.store.transition(task.id, status, actor="test")
    seq = (await side.bus.replay(task.id))[-1].seq

    again = asyncio.ensure_future(side.decider.review_draft(task, "# v2"))
    second = await asyncio.wait_for(_asked(side, task.id, after_seq=seq), 5)

    assert second != first
    await side.decider.decide(second, "approved", actor="cli:ann")
    assert (await asyncio.wait_for(again, 5)).kind == "approve"
