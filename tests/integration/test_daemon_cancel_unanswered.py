"""A cancel whose build runs elsewhere (a worker, a kernel, Colab) and does not answer the abort in
time (issue 17 done-when 2): the daemon used to cancel its local driver and end the task
``aborted`` while the build it could not reach might still be running. Now the task is
``aborting`` — said to whoever cancelled, recorded as a transition — until the build answers (its
driver ends the task ``aborted``) or can no longer be spending (then its driver's abort watch
ends it; the daemon only when the driver cannot)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from agentfirm.daemon import driver_stop
from agentfirm.daemon.service import RESULT_EVENT, TaskHost
from keyring.backends import fail

from agentfirm.domain import calls
from agentfirm.domain.models import Task, TaskStatus
from agentfirm.domain.policy import TaskPolicy
from agentfirm.master import abort_watch
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.transitions import move
from agentfirm.money import usd_to_nano
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from tests.unit.test_abort import REQUEST
from tests.unit.test_aborting_ends import Unanswering

pytestmark = pytest.mark.integration

S = TaskStatus
GUARD_S = 30
"""Not a timing assertion: only a bound so that a hang fails the test instead of the suite."""


async def _host(home: Path) -> TaskHost:
    env = {
        "AGENTFIRM_HOME": str(home),
        "AGENTFIRM_OFFLINE": "1",
        "AGENTFIRM_CANCEL_GRACE_S": "0",
        "AGENTFIRM_PROVIDER_TIMEOUT_S": "1",
    }
    redactor = Redactor()
    secrets = SecretStore(redactor, env={}, backend=fail.Keyring())
    return await TaskHost.open(load_settings(env, cwd=home), redactor=redactor, secrets=secrets)


async def _building_elsewhere(host: TaskHost, answered: asyncio.Event) -> str:
    """A task whose build runs on a worker, with a driver that ends it ``aborted`` only once
    ``answered`` is set (as a driver does when its runner reports the abort)."""
    task = Task(id="t_elsewhere", request="r", policy=TaskPolicy(runner="worker"))
    store, bus = host.app.store, host.app.bus
    await store.create_task(task, actor="test")
    for status in (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED):
        await store.transition(task.id, status, actor="test")
    for status in (S.HANDED_OFF, S.EXECUTING):
        await store.transition(task.id, status, actor="test")

    async def drive() -> None:
        await answered.wait()
        await move(store, bus, task.id, S.ABORTED, actor="worker", reason="build aborted")

    host._drivers[task.id] = asyncio.create_task(drive())
    return task.id


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver_stop, "ANSWER_S", 0.05)
    monkeypatch.setattr(calls, "RESERVATION_GRACE_S", 0.0)
    monkeypatch.setattr(abort_watch, "POLL_S", 0.01)


async def test_a_build_elsewhere_that_answers_late_leaves_the_task_aborting_until_it_does(
    tmp_path: Path,
) -> None:
    host = await _host(tmp_path / "home")
    try:
        answered = asyncio.Event()
        task_id = await _building_elsewhere(host, answered)

        said = await host.cancel(task_id, actor="cli:ann", reason="stop")

        assert said["status"] == "aborting"
        assert (await host.app.store.get_task(task_id)).status is S.ABORTING
        last = (await host.app.store.list_transitions(task_id))[-1]
        assert "worker build has not answered the abort" in last.reason
        assert (await host.cancel(task_id, actor="cli:ann", reason="again"))["status"] == (
            "aborting"
        )
        answered.set()
        async with asyncio.timeout(GUARD_S):
            while host._cancelling.aborting:  # noqa: ASYNC110 - the daemon's own bookkeeping
                await asyncio.sleep(0.01)
        transitions = await host.app.store.list_transitions(task_id)
        assert [(t.to_status, t.actor) for t in transitions[-2:]] == [
            (S.ABORTING, "cli:ann"),
            (S.ABORTED, "worker"),
        ]
    finally:
        await host.close()


async def test_a_build_elsewhere_that_never_answers_is_ended_once_it_cannot_be_spending(
    tmp_path: Path,
) -> None:
    host = await _host(tmp_path / "home")
    try:
        task_id = await _building_elsewhere(host, asyncio.Event())

        assert (await host.cancel(task_id, actor="cli:ann", reason="stop"))["status"] == (
            "aborting"
        )
        async with asyncio.timeout(GUARD_S):
            while host._cancelling.aborting:  # noqa: ASYNC110 - the daemon's own bookkeeping
                await asyncio.sleep(0.05)

        assert (await host.app.store.get_task(task_id)).status is S.ABORTED
        assert host._drivers[task_id].cancelled()
    finally:
        await host.close()


async def test_a_driver_that_stops_without_ending_its_aborting_task_leaves_it_ended(
    tmp_path: Path,
) -> None:
    """A driver that stops without ending the task it was left ``aborting`` (it failed, and
    said so to whoever follows the task): the daemon, which waits for it, ends the task."""
    host = await _host(tmp_path / "home")
    try:
        answered = asyncio.Event()
        task_id = await _building_elsewhere(host, answered)

        async def stop() -> None:
            await answered.wait()

        host._drivers[task_id].cancel()
        host._drivers[task_id] = asyncio.create_task(stop())
        assert (await host.cancel(task_id, actor="cli:ann", reason="stop"))["status"] == (
            "aborting"
        )
        answered.set()
        async with asyncio.timeout(GUARD_S):
            while host._cancelling.aborting:  # noqa: ASYNC110 - the daemon's own bookkeeping
                await asyncio.sleep(0.01)

        last = (await host.app.store.list_transitions(task_id))[-1]
        assert (last.to_status, last.actor) == (S.ABORTED, "cli:ann")
    finally:
        await host.close()


async def test_a_cancel_of_a_task_another_process_builds_waits_for_it_to_end_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task a `run --no-daemon` builds in another process: the daemon refused to cancel it
    ("being driven by another agentfirm process"). Now its build is sent the abort and the
    cancel returns once that process has ended the task, as `tasks cancel --no-daemon` does."""
    from agentfirm.master.task_lock import TaskLocks

    monkeypatch.setattr(driver_stop, "ANSWER_S", GUARD_S)  # it answers: the wait ends then
    home = tmp_path / "home"
    host = await _host(home)
    other = TaskLocks(host.app.locks.directory)  # the other process's
    try:
        store, bus = host.app.store, host.app.bus
        await store.create_task(Task(id="t_there", request="r"), actor="test")
        for status in (S.CLASSIFIED, S.PLANNED, S.AWAITING_PLAN_APPROVAL, S.APPROVED):
            await store.transition("t_there", status, actor="test")
        for status in (S.HANDED_OFF, S.EXECUTING):
            await store.transition("t_there", status, actor="test")
        other.acquire("t_there")

        async def build_there() -> None:  # hears the abort, ends the task, lets go
            async with asyncio.timeout(GUARD_S):
                while not await bus.replay("t_there", stream="control"):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            await move(store, bus, "t_there", S.ABORTED, actor="run", reason="build aborted")
            other.release_all()

        there = asyncio.create_task(build_there())
        said = await host.cancel("t_there", actor="cli:ann", reason="stop")
        await there

        assert said == {"task_id": "t_there", "status": "aborted"}
        last = (await store.list_transitions("t_there"))[-1]
        assert (last.to_status, last.actor) == (S.ABORTED, "run")
    finally:
        other.release_all()
        await host.close()


async def test_a_driven_build_that_never_answers_is_ended_once_by_its_driver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's cancel and its driver's abort watch both used to end an ``aborting`` task
    whose build never answers, with the same deadline: the daemon won by the watch's store
    poll, cut the driver short and ended the task itself. Now only the driver's watch does —
    hearing the transition, not reading for it — and the daemon waits for its driver."""
    monkeypatch.setattr(abort_watch, "POLL_S", GUARD_S)  # heard, or not at all in time
    host = await _host(tmp_path / "home")
    try:
        master = host.app.master(AutoDecider())
        runner = Unanswering()
        master.runner = runner
        task = await master.intake(REQUEST, persona="patent_research")
        await master.plan(task)
        monkeypatch.setattr(host._cancelling, "_runner_of", lambda task: "worker")
        host._spawn(task.id, lambda: master.approve_and_execute(task.id, usd_to_nano(5)))
        driver = host._drivers[task.id]

        async with asyncio.timeout(GUARD_S):
            await runner.started.wait()
            said = await host.cancel(task.id, actor="cli:ann", reason="stop")
            assert said["status"] == "aborting"
            await asyncio.wait([driver])
            while host._cancelling.aborting:  # noqa: ASYNC110 - the daemon's own bookkeeping
                await asyncio.sleep(0.01)

        assert not driver.cancelled()
        assert runner.cancelled
        transitions = await host.app.store.list_transitions(task.id)
        [ended] = [t for t in transitions if t.to_status is S.ABORTED]
        assert "worker build did not answer the abort within 1s" in ended.reason
        events = await host.app.bus.replay(task.id)
        assert [e.payload["result"]["status"] for e in events if e.type == RESULT_EVENT] == [
            "aborted"
        ]
    finally:
        await host.close()
