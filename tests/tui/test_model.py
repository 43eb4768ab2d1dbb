"""The task view's model: events applied once each in seq order, snapshots never overwriting
newer events."""

from __future__ import annotations

from typing import Any

from agentfirm.tui.fmt import parse_time
from agentfirm.tui.model import TaskModel

from tests.tui.fixed_data import PATENT_WAVES, FakeSource


def _event(
    seq: int, type_: str, payload: dict[str, Any], module_id: str | None = None
) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": type_,
        "module_id": module_id,
        "payload": payload,
        "ts": "2026-03-02T11:59:00+00:00",
    }


def test_a_replayed_event_is_dropped_and_counted() -> None:
    model = TaskModel("t")
    events = FakeSource().event_lists["t_exec"]

    applied = [model.apply(e) for e in events[:10] + events[5:]]

    assert applied == [True] * 10 + [False] * 5 + [True] * (len(events) - 10)
    assert [e["seq"] for e in model.events] == list(range(1, len(events) + 1))
    assert model.duplicates == 5


def test_module_events_drive_the_cards_and_the_spend() -> None:
    model = TaskModel("t")
    for event in FakeSource().event_lists["t_exec"]:
        model.apply(event)

    assert [[m.id for m in level] for level in model.waves()] == [sorted(w) for w in PATENT_WAVES]
    assert model.modules["feature_breakdown"].status == "done"
    assert model.modules["feature_breakdown"].attempts == 2
    assert model.modules["claim_chart"].status == "running"
    assert model.status == "executing"
    assert model.budget_usd == 3.0
    assert model.spent_usd == 0.068960
    assert model.simulated


def test_a_snapshot_fetched_before_an_event_does_not_undo_it() -> None:
    model = TaskModel("t")
    model.apply(_event(1, "module.started", {"attempt": 1, "tier": "execution", "wave": 0}, "m"))
    model.apply(_event(2, "module.completed", {"cost_usd": 0.5, "provider": "p"}, "m"))
    model.apply(_event(3, "task.transition", {"from": "executing", "to": "awaiting_review"}))
    stale = {
        "status": "executing",
        "budget_usd": 2.0,
        "cost_usd": 0.1,
        "modules": [{"id": "m", "wave": 1, "status": "running", "cost_usd": 0.0}],
    }

    model.load_detail(stale, as_of_seq=1)

    assert model.status == "awaiting_review"
    assert model.modules["m"].status == "done"
    assert model.modules["m"].cost_usd == 0.5
    assert model.budget_usd == 2.0  # no event said otherwise


def test_a_fresh_snapshot_wins_over_older_events() -> None:
    model = TaskModel("t")
    model.apply(_event(1, "module.started", {"attempt": 1, "tier": "execution", "wave": 0}, "m"))
    fresh = {"status": "executing", "modules": [{"id": "m", "wave": 1, "status": "failed"}]}

    model.load_detail(fresh, as_of_seq=1)

    assert model.modules["m"].status == "failed"


def test_a_module_run_again_after_its_failure_shows_its_attempts_so_far_and_a_new_clock() -> None:
    model = TaskModel("t")
    started = {"tier": "execution", "wave": 0}

    def at(seq: int, type_: str, payload: dict[str, Any], minute: int) -> None:
        event = _event(seq, type_, payload, "m") | {"ts": f"2026-03-02T11:{minute:02d}:00+00:00"}
        model.apply(event)

    at(1, "module.started", started | {"attempt": 1}, 0)
    at(2, "module.retrying", {"attempt": 1, "error": "503"}, 1)
    at(3, "module.started", started | {"attempt": 2}, 2)
    module = model.modules["m"]
    assert module.attempts == 2
    assert module.started_at == parse_time("2026-03-02T11:00:00+00:00")  # a retry within the run

    at(4, "module.failed", {"error": "503", "attempts": 2}, 3)
    at(5, "module.started", started | {"attempt": 3}, 7)  # retried from the question

    assert (module.status, module.attempts) == ("running", 3)
    assert module.started_at == parse_time("2026-03-02T11:07:00+00:00")
    assert module.finished_at is None


def test_questions_open_and_close_with_their_events() -> None:
    model = TaskModel("t")
    model.apply(_event(1, "approval.requested", {"approval_id": "ap1", "kind": "budget"}))
    assert model.open_approvals == {"ap1": "budget"}

    decided = {"approval_id": "ap1", "kind": "budget", "decision": "approved", "budget_usd": 9.0}
    model.apply(_event(2, "approval.decided", decided))

    assert model.open_approvals == {}
    assert model.budget_usd == 9.0
