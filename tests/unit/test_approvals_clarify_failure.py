"""The ``clarify`` and ``failure`` approval kinds: asked through the store, answered from any
process, never asked twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.errors import BadInput, TaskRejected
from agentfirm.master.approvals import CLARIFY_DEFAULT, StoreDecider
from agentfirm.secrets import Redactor
from agentfirm.store.sqlite import SQLiteStore
from tests.unit.test_approvals import TO_REVIEW, S, Side, _asked, _asking, _task, other, side
from tests.unit.test_master_intake import QUESTIONS as ASKED
from tests.unit.test_master_intake import REQUEST, RealModelRouter, _master, _plan_reply

__all__ = ["other", "side"]  # fixtures, imported for their use here

QUESTIONS = ["Which countries?", "Which years?"]
CLARIFYING = [S.CLASSIFIED, S.CLARIFYING]
EXECUTING = TO_REVIEW[:-1]


# ------------------------------------------------------------------ clarify
async def test_clarify_answers_come_back_paired_with_their_questions(side: Side) -> None:
    task = await _task(side, CLARIFYING)
    waiter, approval_id = await _asking(side, task.id, side.decider.clarify(task, QUESTIONS))
    (asked,) = await side.decider.pending(task.id)
    assert [q["id"] for q in asked.payload["questions"]] == ["q1", "q2"]
    assert asked.payload["questions"][0]["question"] == "Which countries?"

    await side.decider.decide(
        approval_id, "approved", actor="slack:U1", answers={"q1": " France and Spain "}
    )

    assert await asyncio.wait_for(waiter, 5) == [
        ("Which countries?", "France and Spain"),
        ("Which years?", ""),  # unanswered: assumed
    ]


async def test_answering_with_the_default_leaves_the_question_assumed(side: Side) -> None:
    task = await _task(side, CLARIFYING)
    waiter, approval_id = await _asking(side, task.id, side.decider.clarify(task, QUESTIONS))
    await side.decider.decide(
        approval_id, "approved", actor="cli:ann", answers={"q1": CLARIFY_DEFAULT, "q2": "2020-"}
    )
    assert await asyncio.wait_for(waiter, 5) == [
        ("Which countries?", ""),
        ("Which years?", "2020-"),
    ]


async def test_rejected_questions_become_assumptions_and_aborted_ones_abort(side: Side) -> None:
    task = await _task(side, CLARIFYING)
    waiter, approval_id = await _asking(side, task.id, side.decider.clarify(task, QUESTIONS))
    await side.decider.decide(approval_id, "rejected", actor="cli:ann")
    assert await asyncio.wait_for(waiter, 5) is None

    other_task = await _task(side, CLARIFYING)
    waiter, approval_id = await _asking(
        side, other_task.id, side.decider.clarify(other_task, QUESTIONS)
    )
    await side.decider.decide(approval_id, "aborted", actor="cli:ann")
    with pytest.raises(TaskRejected, match="aborted by cli:ann"):
        await asyncio.wait_for(waiter, 5)


async def test_answers_to_unknown_questions_or_with_another_decision_are_bad_input(
    side: Side,
) -> None:
    task = await _task(side, CLARIFYING)
    waiter, approval_id = await _asking(side, task.id, side.decider.clarify(task, QUESTIONS))
    with pytest.raises(BadInput, match=r"unknown question id.*q9"):
        await side.decider.decide(approval_id, "approved", actor="cli:ann", answers={"q9": "x"})
    with pytest.raises(BadInput, match="answers go only with approving"):
        await side.decider.decide(approval_id, "rejected", actor="cli:ann", answers={"q1": "x"})
    assert (await side.decider.pending(task.id))[0].id == approval_id  # nothing was written
    waiter.cancel()


async def test_answers_decided_in_another_process_reach_the_waiter(side: Side, other: Side) -> None:
    task = await _task(side, CLARIFYING)
    waiter, approval_id = await _asking(side, task.id, side.decider.clarify(task, QUESTIONS))

    await other.decider.decide(approval_id, "approved", actor="tui:bo", answers={"q2": "2024"})

    assert await asyncio.wait_for(waiter, 5) == [("Which countries?", ""), ("Which years?", "2024")]


# ------------------------------------------------------------------ failure
@pytest.mark.parametrize(
    ("decision", "choice"),
    [("retry", "retry"), ("approved", "retry"), ("skip", "skip"), ("aborted", "abort")],
)
async def test_a_failure_is_decided_retry_skip_or_abort(
    side: Side, decision: str, choice: str
) -> None:
    task = await _task(side, EXECUTING)
    work = side.decider.module_failed(task, "analysis", "provider 503", 2)
    waiter, approval_id = await _asking(side, task.id, work)
    (asked,) = await side.decider.pending(task.id)
    assert (asked.kind, asked.payload["module_id"], asked.payload["attempts"]) == (
        "failure",
        "analysis",
        2,
    )
    assert asked.payload["error"] == "provider 503"

    await side.decider.decide(approval_id, decision, actor="cli:ann")

    assert await asyncio.wait_for(waiter, 5) == choice
    (decided,) = [e for e in await side.bus.replay(task.id) if e.type == "approval.decided"]
    assert (decided.payload["kind"], decided.payload["decision"]) == ("failure", decision)


async def test_retry_and_skip_are_only_for_failures(side: Side) -> None:
    task = await _task(side, TO_REVIEW)
    waiter, approval_id = await _asking(side, task.id, side.decider.review_draft(task, "# D"))
    with pytest.raises(BadInput, match="cannot be skip"):
        await side.decider.decide(approval_id, "skip", actor="cli:ann")
    waiter.cancel()


async def test_a_new_failure_of_the_same_module_asks_again(side: Side) -> None:
    task = await _task(side, EXECUTING)
    waiter, first = await _asking(side, task.id, side.decider.module_failed(task, "a", "e", 2))
    await side.decider.decide(first, "retry", actor="cli:ann")
    assert await asyncio.wait_for(waiter, 5) == "retry"
    seq = (await side.bus.replay(task.id))[-1].seq

    again = asyncio.ensure_future(side.decider.module_failed(task, "a", "e", 4))
    second = await asyncio.wait_for(_asked(side, task.id, after_seq=seq), 10)

    assert second != first  # a decided retry is never reused for the next failure
    await side.decider.decide(second, "aborted", actor="cli:ann")
    assert await asyncio.wait_for(again, 5) == "abort"


async def test_a_failure_asked_again_after_a_restart_gets_its_pending_row(
    side: Side, other: Side
) -> None:
    task = await _task(side, EXECUTING)
    waiter, approval_id = await _asking(
        side, task.id, side.decider.module_failed(task, "a", "e", 2)
    )
    waiter.cancel()  # the process died while asking

    resumed = asyncio.ensure_future(other.decider.module_failed(task, "a", "e", 2))
    await side.decider.decide(approval_id, "skip", actor="cli:ann")

    assert await asyncio.wait_for(resumed, 5) == "skip"
    assert len([a for a in await side.store.list_approvals(task.id) if a.kind == "failure"]) == 1


# ------------------------------------------------------------------ through the Master Agent
async def test_answers_decided_through_the_store_reach_the_plan_and_its_assumptions(
    tmp_path: Path,
) -> None:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    try:
        router = RealModelRouter(
            {
                "_clarify": [{"ambiguous": True, "questions": ASKED}],
                "_plan": [_plan_reply(["search"])],
            }
        )
        decider = StoreDecider(store, bus, redact=Redactor().redact, poll_interval=0.05)
        master = _master((store, bus, tmp_path), router, decider)
        task = await master.intake(REQUEST, persona="patent_research")
        planning = asyncio.ensure_future(master.plan(task))
        approval_id = await asyncio.wait_for(_asked(Side(store, bus, decider), task.id), 10)

        await decider.decide(approval_id, "approved", actor="tui:bo", answers={"q1": "EP and US"})

        spec, _estimate = await asyncio.wait_for(planning, 10)
    finally:
        master.locks.release_all()
        await bus.close()
        await store.close()
    assert "EP and US" in " ".join(m.content for m in router.calls[-1].messages)
    assert any(ASKED[0] in a and "EP and US" in a for a in spec.assumptions)
    assert any(ASKED[1] in a and "left unanswered" in a for a in spec.assumptions)
