"""Pilot-driven flows through the failed-module prompt against a real daemon (in-process, its
offline router scripted to fail one module): retry, skip and abort, each pressed at 80×24."""

from __future__ import annotations

from typing import Any

import pytest
from agentfirm.tui.app import AgentfirmApp
from agentfirm.tui.modals import ClarifyModal, FailureModal, PlanModal, ReviewModal
from agentfirm.tui.screens.output import OutputScreen
from agentfirm.tui.screens.task_list import TaskListScreen
from agentfirm.tui.screens.task_view import TaskScreen
from agentfirm.tui.widgets.markdown import MarkdownText
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from agentfirm.build_master.assembly import SKIPPED_NOTE
from agentfirm.domain.models import Approval, ModuleStatus, TaskStatus
from tests.fakes.flaky_router import Flaky
from tests.tui.conftest import QUICK, Daemon
from tests.tui.helpers import settle, task_screen, until
from tests.tui.test_flows import create_task, prompt, until_final

pytestmark = pytest.mark.heavy

FAILING = "prior_art_search"
"""A module with dependents (the patent persona's plan) and modules that do not need it."""
ALWAYS = 1_000
SIZE = (80, 24)


@pytest.fixture
def daemon_env() -> dict[str, str]:
    """Offline by its own settings: every task is served by ``host.app.router``, which the
    tests wrap in ``Flaky`` before the task is submitted."""
    return dict(QUICK, AGENTFIRM_OFFLINE="1", AGENTFIRM_OFFLINE_LATENCY_MS="0")


def flaky(daemon: Daemon, failures: int) -> Flaky:
    app = daemon.host.app
    router = Flaky(app.router, failures, failing=FAILING)
    app._router = router  # type: ignore[assignment]
    return router


async def to_failure(pilot: Pilot[Any]) -> tuple[TaskScreen, FailureModal]:
    """A task created in the TUI, its questions answered with their defaults and its plan
    approved, up to the failed-module prompt."""
    view = await create_task(pilot)
    await prompt(pilot, ClarifyModal)
    await pilot.press("ctrl+s")
    await prompt(pilot, PlanModal)
    await pilot.press("ctrl+s")
    failure = await prompt(pilot, FailureModal)
    shown = str(failure.query_one("#failure", Static).content)
    assert FAILING in shown
    assert "failed after 2 attempt(s)" in shown
    assert "503" in shown
    return view, failure


def listed_status(pilot: Pilot[Any], task_id: str) -> str:
    """The task's Status cell in the task list (the current screen)."""
    table: DataTable[Any] = pilot.app.screen.query_one(DataTable)
    return str(table.get_cell(task_id, "status")) if task_id in table.rows else ""


async def questions(daemon: Daemon, task_id: str) -> list[Approval]:
    """The task's questions (the rows a human was asked, not the internal records)."""
    approvals = await daemon.host.app.store.list_approvals(task_id)
    return [a for a in approvals if "question" in a.payload]


async def asked(daemon: Daemon, task_id: str) -> list[tuple[str, str, str | None]]:
    return [(a.kind, a.decision, a.actor) for a in await questions(daemon, task_id)]


async def statuses(daemon: Daemon, task_id: str) -> dict[str, ModuleStatus]:
    runs = await daemon.host.app.store.list_module_runs(task_id)
    return {r.module_id: r.status for r in runs}


async def test_a_failed_module_retried_from_the_prompt_succeeds_and_the_task_completes(
    daemon: Daemon,
) -> None:
    router = flaky(daemon, failures=3)  # both attempts of the build, then the retry's first
    app: AgentfirmApp = daemon.app()
    async with app.run_test(size=SIZE) as pilot:
        view, failure = await to_failure(pilot)
        await pilot.press("r")
        await prompt(pilot, ReviewModal, after=failure.approval_id)
        await pilot.press("ctrl+s")
        await until_final(pilot, view)

        task_id = view.task_id
        assert view.model.status == "completed"
        assert view.model.modules[FAILING].status == "done"
        assert view.model.modules[FAILING].attempts == 4
        assert {m.status for m in view.model.modules.values()} == {"done"}

    assert await asked(daemon, task_id) == [
        ("clarify", "approved", "tui:tester"),
        ("plan", "approved", "tui:tester"),
        ("failure", "retry", "tui:tester"),
        ("review", "approved", "tui:tester"),
    ]
    failed = next(a for a in await questions(daemon, task_id) if a.kind == "failure")
    assert failed.id == failure.approval_id
    assert (failed.payload["module_id"], failed.payload["attempts"]) == (FAILING, 2)
    runs = {r.module_id: r for r in await daemon.host.app.store.list_module_runs(task_id)}
    assert runs[FAILING].status is ModuleStatus.DONE
    assert runs[FAILING].attempts == 4  # its attempts keep counting across the retry
    assert router.calls[FAILING] >= 4
    assert router.failures == 0
    assert (await daemon.host.app.store.get_task(task_id)).status is TaskStatus.COMPLETED


async def test_a_failed_module_skipped_from_the_prompt_is_marked_and_the_task_completes(
    daemon: Daemon,
) -> None:
    router = flaky(daemon, failures=ALWAYS)
    app: AgentfirmApp = daemon.app()
    async with app.run_test(size=SIZE) as pilot:
        view, failure = await to_failure(pilot)
        await pilot.press("s")
        await prompt(pilot, ReviewModal, after=failure.approval_id)
        await pilot.press("ctrl+s")
        await until_final(pilot, view)

        task_id = view.task_id
        assert view.model.status == "completed"
        assert view.model.modules[FAILING].status == "skipped"
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, OutputScreen), what="the draft")
        await settle(pilot)
        deliverable = pilot.app.screen.query_one("#output", MarkdownText).markdown

    assert await asked(daemon, task_id) == [
        ("clarify", "approved", "tui:tester"),
        ("plan", "approved", "tui:tester"),
        ("failure", "skip", "tui:tester"),
        ("review", "approved", "tui:tester"),
    ]
    runs = await statuses(daemon, task_id)
    assert runs.pop(FAILING) is ModuleStatus.SKIPPED
    assert set(runs.values()) == {ModuleStatus.DONE}
    assert router.calls[FAILING] == 2  # skipped: not run again

    task = await daemon.host.app.store.get_task(task_id)
    assert task.status is TaskStatus.COMPLETED
    assert task.spec is not None
    dependents = [m.id for m in task.spec.plan.modules if FAILING in m.depends_on]
    assert dependents
    for module_id in dependents:  # told what is missing, in the prompt they ran on
        assert "# Skipped upstream modules" in router.prompts[module_id][-1]
        assert f"(`{FAILING}`)" in router.prompts[module_id][-1]
    independent = [m.id for m in task.spec.plan.modules if not m.depends_on]
    assert all("Skipped upstream" not in router.prompts[m][-1] for m in independent)

    section = deliverable.split(f"(`{FAILING}`)", 1)[1].split("\n### ", 1)[0]
    assert SKIPPED_NOTE in section  # the deliverable's appendix marks the skipped module
    assert deliverable.count(SKIPPED_NOTE) == 1


async def test_aborting_at_the_failure_prompt_aborts_the_task_under_the_users_name(
    daemon: Daemon,
) -> None:
    router = flaky(daemon, failures=ALWAYS)
    app: AgentfirmApp = daemon.app()
    async with app.run_test(size=SIZE) as pilot:
        view, failure = await to_failure(pilot)
        task_id = view.task_id
        await pilot.press("escape", "escape")  # put the question off, back to the list
        await until(pilot, lambda: isinstance(pilot.app.screen, TaskListScreen), what="the list")
        await until(  # executing, yet waiting for a person: the list says so
            pilot,
            lambda: listed_status(pilot, task_id) == "⏸ module failed",
            what="the list to show the task waits",
        )

        await pilot.press("enter")  # the task again: its question opens by itself
        again = await prompt(pilot, FailureModal)
        assert again.approval_id == failure.approval_id
        view = task_screen(pilot)
        await pilot.press("x")
        await until_final(pilot, view)

        assert view.model.status == "aborted"
        assert view.model.modules[FAILING].status == "failed"
        assert isinstance(pilot.app.screen, TaskScreen)  # no further question opened
        assert not view.prompts.pending

    assert await asked(daemon, task_id) == [
        ("clarify", "approved", "tui:tester"),
        ("plan", "approved", "tui:tester"),
        ("failure", "aborted", "tui:tester"),
    ]
    aborted = (await questions(daemon, task_id))[-1]
    assert aborted.id == failure.approval_id
    assert aborted.notes == "aborted after a module failed"
    task = await daemon.host.app.store.get_task(task_id)
    assert task.status is TaskStatus.ABORTED
    assert task.spec is not None
    runs = await statuses(daemon, task_id)
    assert runs[FAILING] is ModuleStatus.FAILED
    dependents = {m.id for m in task.spec.plan.modules if FAILING in m.depends_on}
    assert all(runs.get(m) is not ModuleStatus.DONE for m in dependents)
    assert router.calls[FAILING] == 2  # aborted: not run again
    transitions = await daemon.host.app.store.list_transitions(task_id)
    last = transitions[-1]
    assert (last.from_status, last.to_status) == (TaskStatus.EXECUTING, TaskStatus.ABORTED)
    assert last.actor == "tui:tester"  # who chose, not the daemon that asked them
    assert f"module {FAILING} failed" in last.reason
