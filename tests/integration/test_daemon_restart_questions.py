"""A daemon restarted while a task waits on a ``clarify`` question (asked while clarifying) or a
``failure`` question (asked while executing): the question is asked once — the row asked before
the restart is the one answered — and the answer takes effect; a question whose announcement the
stop cut off is announced after the restart. Task hosts in-process on a real SQLite store and bus
under a temporary home, offline."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from agentfirm.daemon.service import TaskHost
from keyring.backends import fail

from agentfirm.domain.calls import CLARIFY_ID as CLARIFY_MODULE_ID
from agentfirm.domain.models import Approval, ModuleStatus, TaskStatus
from agentfirm.router.base import CallResult, Message
from agentfirm.router.errors import RetryableProviderError
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings, load_settings

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
FAILING = "prior_art_search"


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


class _Failing:
    """The host's offline router, with every call of ``module_id`` failing (retryably)."""

    def __init__(self, inner: Any, module_id: str = FAILING) -> None:
        self.inner = inner
        self.module_id = module_id

    async def call(self, *, messages: Sequence[Message], **kwargs: Any) -> CallResult:
        if kwargs.get("module_id") == self.module_id:
            raise RetryableProviderError("every provider for tier execution failed: 503")
        result: CallResult = await self.inner.call(messages=messages, **kwargs)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _asked(host: TaskHost, task_id: str, kind: str) -> Approval:
    """The pending question of ``kind`` once the task has asked it: its row written and its
    ``approval.requested`` published, as a front end learns of it (clarify questions before it
    are left to assumptions). Not the row alone: a host stopped between the two writes has not
    asked the question yet as far as any front end can tell."""
    async with contextlib.aclosing(host.app.bus.subscribe(task_id)) as events:  # type: ignore[type-var]
        async for event in events:
            if event.type != "approval.requested":
                continue
            approval = await host.decider.find(str(event.payload["approval_id"]))
            if approval.decision != "pending":
                continue
            if approval.kind == kind:
                return approval
            if approval.kind == "clarify":
                await host.decide(approval.id, "rejected", actor="cli:ann")
    raise AssertionError(f"the bus closed before task {task_id} asked a {kind} question")


async def _row_written(host: TaskHost, task_id: str, kind: str) -> Approval:
    """The pending row of ``kind`` as soon as it is written, announced or not."""
    while True:
        for approval in await host.decider.pending(task_id):
            if approval.kind == kind:
                return approval
        await asyncio.sleep(0.05)


class _Unannounced:
    """A host's bus whose announcements of ``kind`` questions never get written: the host
    stops between writing such a question's row and announcing it."""

    def __init__(self, inner: Any, kind: str) -> None:
        self.inner = inner
        self.kind = kind

    async def publish(
        self, task_id: str, type: str, payload: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        if type == "approval.requested" and (payload or {}).get("kind") == self.kind:
            await asyncio.Event().wait()  # until the host stops
        return await self.inner.publish(task_id, type, payload, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _done(host: TaskHost, task_id: str) -> None:
    async for _event in host.follow(task_id):
        pass


async def _requested(host: TaskHost, task_id: str) -> Counter[str]:
    """How many times each kind of question was announced (``approval.requested``)."""
    return Counter(
        str(e.payload["kind"])
        for e in await host.app.bus.replay(task_id)
        if e.type == "approval.requested"
    )


async def _rows(host: TaskHost, task_id: str, kind: str) -> list[Approval]:
    return [a for a in await host.app.store.list_approvals(task_id) if a.kind == kind]


@pytest.mark.parametrize(
    "clarification_fails_after", [False, True], ids=["same-questions", "clarify-call-fails"]
)
async def test_a_clarify_question_pending_at_a_restart_is_answered_once_and_used(
    tmp_path: Path, clarification_fails_after: bool
) -> None:
    """The resumed task puts the questions it asked, whatever a new clarification call would
    say (here: nothing, its provider failing): the answer is not lost."""
    settings = _settings(tmp_path / "home")
    first = await _host(settings)
    try:
        task_id = (await first.submit(REQUEST))["task_id"]
        clarify = await asyncio.wait_for(_asked(first, task_id, "clarify"), 10)
    finally:
        await first.close()

    second = await _host(settings)
    if clarification_fails_after:
        second.app._router = _Failing(second.app.router, CLARIFY_MODULE_ID)  # type: ignore[assignment]
    try:
        assert (await second.app.store.get_task(task_id)).status is TaskStatus.CLARIFYING
        assert await second.start() == []  # waiting for a human: not driven until answered
        (first_id, *_rest) = [str(q["id"]) for q in clarify.payload["questions"]]
        await second.decide(
            clarify.id, "approved", actor="cli:ann", answers={first_id: "EU filings only"}
        )
        plan = await asyncio.wait_for(_asked(second, task_id, "plan"), 10)
        task = await second.app.store.get_task(task_id)

        assert [a.id for a in await _rows(second, task_id, "clarify")] == [clarify.id]
        assert (await _requested(second, task_id))["clarify"] == 1
        assert task.spec is not None
        assert any("the client answered: EU filings only" in a for a in task.spec.assumptions)
        assert plan.decision == "pending"
    finally:
        await second.close()


async def test_a_failure_question_pending_at_a_restart_is_answered_once_and_used(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path / "home")
    first = await _host(settings)
    try:
        first.app._router = _Failing(first.app.router)  # type: ignore[assignment]
        task_id = (await first.submit(REQUEST))["task_id"]
        plan = await asyncio.wait_for(_asked(first, task_id, "plan"), 10)
        await first.decide(plan.id, "approved", actor="cli:ann", budget_usd=None)
        failure = await asyncio.wait_for(_asked(first, task_id, "failure"), 30)
    finally:
        await first.close()

    second = await _host(settings)  # its router serves every module
    try:
        assert (await second.app.store.get_task(task_id)).status is TaskStatus.EXECUTING
        assert await second.start() == [task_id]
        await second.decide(failure.id, "retry", actor="cli:ann")
        review = await asyncio.wait_for(_asked(second, task_id, "review"), 30)
        await second.decide(review.id, "approved", actor="cli:ann")
        await asyncio.wait_for(_done(second, task_id), 30)

        assert [a.id for a in await _rows(second, task_id, "failure")] == [failure.id]
        assert (await _requested(second, task_id))["failure"] == 1
        runs = {r.module_id: r.status for r in await second.app.store.list_module_runs(task_id)}
        assert runs[FAILING] is ModuleStatus.DONE
        assert (await second.app.store.get_task(task_id)).status is TaskStatus.COMPLETED
    finally:
        await second.close()


async def test_a_failure_question_the_stop_left_unannounced_is_announced_once_after_it(
    tmp_path: Path,
) -> None:
    """The host stops after writing the failure question's row, before announcing it: the
    resumed task announces that row (once) instead of leaving it unseen by every front end."""
    settings = _settings(tmp_path / "home")
    first = await _host(settings)
    try:
        first.app._router = _Failing(first.app.router)  # type: ignore[assignment]
        first.decider.bus = _Unannounced(first.decider.bus, "failure")  # type: ignore[assignment]
        task_id = (await first.submit(REQUEST))["task_id"]
        plan = await asyncio.wait_for(_asked(first, task_id, "plan"), 10)
        await first.decide(plan.id, "approved", actor="cli:ann", budget_usd=None)
        written = await asyncio.wait_for(_row_written(first, task_id, "failure"), 30)
    finally:
        await first.close()
    assert (await _requested_in(settings, task_id))["failure"] == 0

    second = await _host(settings)
    try:
        assert await second.start() == [task_id]
        failure = await asyncio.wait_for(_asked(second, task_id, "failure"), 30)
        await second.decide(failure.id, "retry", actor="cli:ann")
        review = await asyncio.wait_for(_asked(second, task_id, "review"), 30)
        await second.decide(review.id, "approved", actor="cli:ann")
        await asyncio.wait_for(_done(second, task_id), 30)

        assert failure.id == written.id
        assert [a.id for a in await _rows(second, task_id, "failure")] == [written.id]
        assert (await _requested(second, task_id))["failure"] == 1
        assert (await second.app.store.get_task(task_id)).status is TaskStatus.COMPLETED
    finally:
        await second.close()


async def test_a_clarify_question_the_stop_left_unannounced_is_announced_at_the_restart(
    tmp_path: Path,
) -> None:
    """A task waiting for a human is not driven after a restart, so nothing asks its question
    again: the restarted host announces the question the stop left unannounced, once."""
    settings = _settings(tmp_path / "home")
    first = await _host(settings)
    try:
        first.decider.bus = _Unannounced(first.decider.bus, "clarify")  # type: ignore[assignment]
        task_id = (await first.submit(REQUEST))["task_id"]
        written = await asyncio.wait_for(_row_written(first, task_id, "clarify"), 10)
    finally:
        await first.close()

    second = await _host(settings)
    try:
        assert await second.start() == []  # waiting for a human: not driven until answered
        clarify = await asyncio.wait_for(_asked(second, task_id, "clarify"), 10)
        assert await second.start() == []  # a second start announces nothing more

        assert clarify.id == written.id
        assert (await _requested(second, task_id))["clarify"] == 1
    finally:
        await second.close()


async def _requested_in(settings: Settings, task_id: str) -> Counter[str]:
    host = await _host(settings)
    try:
        return await _requested(host, task_id)
    finally:
        await host.close()
