"""The CLI's side of the daemon against the real API (uvicorn on a Unix socket, offline tasks):
following a task and answering it from the terminal, the decide body's `answers` and failure
decisions, attachments, and the endpoints `approve`, `reject` and `resume` use."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentfirm.api.client import DaemonClient
from agentfirm.cli.answers import AutoAnswers, TerminalAnswers
from agentfirm.cli.follow import drive
from agentfirm.master.decisions import AutoDecider
from tests.integration.test_daemon_api import REQUEST, Api, serving
from tests.unit.test_cli_answers import ScriptedConsole

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(tmp_path / "home") as served:
        yield served


async def _drive(api: Api, task_id: str, answers: Any, after_seq: int = 0) -> dict[str, Any]:
    client = DaemonClient(api.socket)
    try:
        return await asyncio.to_thread(
            drive, client, task_id, after_seq=after_seq, out=None, answers=answers
        )
    finally:
        client.close()


def _terminal(*answers: str) -> TerminalAnswers:
    return TerminalAnswers(ScriptedConsole(*answers), actor="cli:ann")


async def _planned(api: Api) -> str:
    """A task planned offline in another process (`agentfirm plan --offline`): nothing drives
    it, and nothing in it says offline."""
    app = dataclasses.replace(
        api.host.app, settings=api.host.settings.model_copy(update={"offline": True}), _router=None
    )
    master = app.master(AutoDecider())
    task = await master.intake(REQUEST, persona="patent_research")
    await master.plan(task)
    return task.id


# ------------------------------------------------------------------ following and answering
async def test_stopping_at_the_budget_prompt_leaves_a_task_that_resume_finishes(api: Api) -> None:
    task_id = await api.submit(budget_usd="0.05")

    stopped = await _drive(api, task_id, _terminal("", "", "", "y", "s"))
    resumed = (await api.http.post(f"/tasks/{task_id}/resume", json={"budget_usd": "5"})).json()
    finished = await _drive(api, task_id, AutoAnswers(), after_seq=resumed["after_seq"])

    assert stopped["status"] == "budget_exhausted"
    assert finished["status"] == "completed"
    assert finished["budget_usd"] == 5.0


async def test_aborting_at_the_budget_prompt_ends_the_run_aborted(api: Api) -> None:
    task_id = await api.submit(budget_usd="0.05")

    result = await _drive(api, task_id, _terminal("", "", "", "y", "a"))

    assert result["status"] == "aborted"
    assert (await api.http.get(f"/tasks/{task_id}")).json()["status"] == "aborted"


async def test_yes_through_the_daemon_assumes_the_questions_before_planning(api: Api) -> None:
    task_id = await api.submit()

    result = await _drive(api, task_id, AutoAnswers())

    assert result["status"] == "completed"
    approvals = (await api.http.get(f"/tasks/{task_id}/approvals")).json()
    clarify = [a for a in approvals if a["kind"] == "clarify"]
    assert [(a["decision"], a["actor"]) for a in clarify] == [("rejected", "auto:--yes")]


# ------------------------------------------------------------------ the decide body
async def test_clarify_answers_reach_the_spec(api: Api) -> None:
    task_id = await api.submit()
    clarify_id = await _first_question(api, task_id)

    decided = await api.decide(clarify_id, "approved", answers={"q1": "only the EPO"})
    await api.asked(task_id, "plan")

    assert decided.status_code == 200, decided.text
    spec = (await api.host.app.store.get_task(task_id)).spec
    assert spec is not None
    assert any("the client answered: only the EPO" in line for line in spec.assumptions)


async def _first_question(api: Api, task_id: str) -> str:
    async for event in api.events(task_id):
        if event["type"] == "approval.requested":
            assert event["payload"]["kind"] == "clarify"
            return str(event["payload"]["approval_id"])
    raise AssertionError("the task asked nothing")


@pytest.mark.parametrize("decision", ["retry", "skip"])
async def test_failure_decisions_reach_the_core_which_refuses_them_for_a_plan(
    api: Api, decision: str
) -> None:
    task_id = await api.submit()
    plan_id, _seq = await api.asked(task_id, "plan")

    response = await api.decide(plan_id, decision)

    assert response.status_code == 400  # not 422: the API takes it, the plan cannot be retried
    assert decision in response.json()["error"]


@pytest.mark.parametrize(
    ("answers", "status"),
    [({"q1": "x" * 20_001}, 422), ({"": "x"}, 422), ("EP", 422)],
    ids=["too-long", "empty-id", "not-a-map"],
)
async def test_malformed_answers_are_422(api: Api, answers: Any, status: int) -> None:
    response = await api.decide("ap_nope", "approved", answers=answers)

    assert response.status_code == status


# ------------------------------------------------------------------ attachments
async def test_an_attachment_is_copied_for_the_task(api: Api, tmp_path: Path) -> None:
    brief = tmp_path / "brief.txt"
    brief.write_text("The alloy heals cracks at 80 C using embedded indium capsules.\n")

    task_id = await api.submit(attachments=[str(brief)])

    copies = list((api.host.settings.paths.data_dir / "attachments" / task_id).rglob("brief.txt"))
    assert [c.read_text() for c in copies] == [brief.read_text()]


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("notes.txt", 422, "absolute"),
        ("/nonexistent/notes.txt", 400, "/nonexistent/notes.txt"),
        ("/", 400, "'/'"),
    ],
    ids=["relative", "missing", "directory"],
)
async def test_a_bad_attachment_is_refused_before_a_task_is_written(
    api: Api, path: str, status: int, needle: str
) -> None:
    response = await api.http.post(
        "/tasks", json={"request": REQUEST, "offline": True, "attachments": [path]}
    )

    assert response.status_code == status
    assert needle in response.json()["error"]
    assert (await api.http.get("/tasks")).json() == []


# ------------------------------------------------------------------ reject and resume
async def test_reject_rejects_a_planned_task_nothing_drives(api: Api) -> None:
    task_id = await _planned(api)

    response = await api.http.post(f"/tasks/{task_id}/reject", json={"reason": "not now"})

    assert response.json() == {"task_id": task_id, "status": "rejected"}
    shown = (await api.http.get(f"/tasks/{task_id}")).json()
    assert (shown["transitions"][-1]["to"], shown["transitions"][-1]["reason"]) == (
        "rejected",
        "not now",
    )


async def test_reject_refuses_a_task_the_daemon_drives(api: Api) -> None:
    task_id = await api.submit()
    await api.asked(task_id, "plan")

    response = await api.http.post(f"/tasks/{task_id}/reject", json={})

    assert response.status_code == 400
    assert "driven" in response.json()["error"]


async def test_resuming_offline_keeps_the_task_offline_across_restarts(api: Api) -> None:
    task_id = await _planned(api)

    response = await api.http.post(f"/tasks/{task_id}/resume", json={"offline": True})

    assert response.status_code == 200, response.text
    assert (await api.host.app.store.get_task(task_id)).policy.offline
    await api.asked(task_id, "plan", after_seq=response.json()["after_seq"])


async def test_resume_answers_a_question_asked_before_a_restart(tmp_path: Path) -> None:
    async with serving(tmp_path / "home") as first:
        task_id = await first.submit()
        await first.asked(task_id, "plan")

    async with serving(tmp_path / "home") as second:
        resumed = (await second.http.post(f"/tasks/{task_id}/resume", json={})).json()
        result = await asyncio.wait_for(
            _drive(second, task_id, AutoAnswers(), after_seq=resumed["after_seq"]), 60
        )

    assert result["status"] == "completed"
