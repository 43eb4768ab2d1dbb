"""A daemon stopped between moving a task into a waiting status and writing its question's row:
the restarted daemon drives the task, which asks the question (once). A task planned by
``agentfirm plan`` waits with no question by design and is left waiting. Task hosts in-process on
a real SQLite store and bus under a temporary home, offline."""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from keyring.backends import fail

from agentfirm.domain.models import Approval, TaskStatus
from agentfirm.master.decisions import AutoDecider
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings, load_settings
from daemon.service import TaskHost

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
S = TaskStatus


def _settings(home: Path) -> Settings:
    env = {
        "AGENTFIRM_HOME": str(home),
        "AGENTFIRM_OFFLINE": "1",
        "AGENTFIRM_OFFLINE_LATENCY_MS": "0",
    }
    return load_settings(env, cwd=home)


async def _host(settings: Settings) -> TaskHost:
    redactor = Redactor()
    secrets = SecretStore(redactor, env={}, backend=fail.Keyring())
    return await TaskHost.open(settings, redactor=redactor, secrets=secrets)


class _NoRow:
    """A host decider's store whose rows of ``kind`` never get written: the host stops after
    moving the task into the status that waits on them, before asking."""

    def __init__(self, inner: Any, kind: str) -> None:
        self.inner = inner
        self.kind = kind

    async def create_approval(self, approval: Approval) -> Any:
        if approval.kind == self.kind:
            await asyncio.Event().wait()  # until the host stops
        return await self.inner.create_approval(approval)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _waiting_in(host: TaskHost, task_id: str, status: TaskStatus, budget: str) -> None:
    """Answer the task's questions on the way (clarify: assumed; plan: approved at ``budget``;
    review: approved) until it is in ``status``."""
    while (await host.app.store.get_task(task_id)).status is not status:
        for approval in await host.decider.pending(task_id):
            if approval.kind == "clarify":
                await host.decide(approval.id, "rejected", actor="cli:ann")
            elif approval.kind == "plan":
                await host.decide(approval.id, "approved", actor="cli:ann", budget_usd=budget)
            elif approval.kind == "review":
                await host.decide(approval.id, "approved", actor="cli:ann")
        await asyncio.sleep(0.02)


async def _asked(host: TaskHost, task_id: str, kind: str) -> Approval:
    """The question of ``kind`` once it is asked: its row written and announced."""
    async for event in host.app.bus.subscribe(task_id):
        if event.type == "approval.requested" and event.payload.get("kind") == kind:
            return await host.decider.find(str(event.payload["approval_id"]))
    raise AssertionError("the bus closed")


async def _requested(host: TaskHost, task_id: str) -> Counter[str]:
    return Counter(
        str(e.payload["kind"])
        for e in await host.app.bus.replay(task_id)
        if e.type == "approval.requested"
    )


@pytest.mark.parametrize(
    ("kind", "status", "budget"),
    [
        ("clarify", S.CLARIFYING, "5"),
        ("plan", S.AWAITING_PLAN_APPROVAL, "5"),
        ("review", S.AWAITING_REVIEW, "5"),
        ("budget", S.AWAITING_BUDGET, "0.0001"),
    ],
    ids=["clarifying", "awaiting-plan-approval", "awaiting-review", "awaiting-budget"],
)
async def test_a_question_the_stop_left_unwritten_is_asked_after_the_restart(
    tmp_path: Path, kind: str, status: TaskStatus, budget: str
) -> None:
    settings = _settings(tmp_path / "home")
    first = await _host(settings)
    try:
        first.decider.store = _NoRow(first.decider.store, kind)  # type: ignore[assignment]
        task_id = (await first.submit(REQUEST))["task_id"]
        await asyncio.wait_for(_waiting_in(first, task_id, status, budget), 30)
    finally:
        await first.close()

    second = await _host(settings)
    try:
        assert [a for a in await second.app.store.list_approvals(task_id) if a.kind == kind] == []
        assert await second.start() == [task_id]
        asked = await asyncio.wait_for(_asked(second, task_id, kind), 30)

        assert asked.decision == "pending"
        assert (await second.app.store.get_task(task_id)).status is status
        assert (await _requested(second, task_id))[kind] == 1
    finally:
        await second.close()


async def test_tasks_the_cli_left_waiting_with_no_question_are_left_waiting(
    tmp_path: Path,
) -> None:
    """``agentfirm plan`` leaves its task awaiting plan approval with no question (it waits for
    ``agentfirm approve``), and ``agentfirm run --yes`` declines more budget without asking: a
    daemon starting puts neither question to anyone."""
    settings = _settings(tmp_path / "home")
    host = await _host(settings)
    try:
        master = host.app.master(AutoDecider())  # what the CLI runs in-process
        planned = await master.intake(REQUEST)
        await master.plan(planned)
        stopped = await master.run(REQUEST, budget_usd=Decimal("0.0001"))
        master.locks.release_all()
        assert stopped.status == "budget_exhausted"

        assert await host.start() == []
        for task_id, status in (
            (planned.id, S.AWAITING_PLAN_APPROVAL),
            (stopped.task_id, S.AWAITING_BUDGET),
        ):
            assert (await host.app.store.get_task(task_id)).status is status
            assert await host.app.store.list_approvals(task_id) == []
    finally:
        await host.close()
