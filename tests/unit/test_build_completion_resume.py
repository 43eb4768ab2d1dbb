"""A module's completion is two writes (its output with its done row, then ``module.completed``):
a process killed between them resumes and announces the completion, exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.attachments import Attachments
from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Event, ModuleStatus, StreamName
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


class Killed(BaseException):
    """The process dying: nothing after it runs, nothing catches it."""


class DiesBeforeCompletion(SQLiteLogBus):
    """A bus whose process dies once, as it is about to publish a ``module.completed`` (the
    module's done row is already written): at the first one, or at the one whose module is
    the last still not done."""

    def __init__(self, path: Path, store: SQLiteStore, *, last: bool) -> None:
        super().__init__(path)
        self.store, self.last, self.dying = store, last, True

    async def publish(
        self,
        task_id: str,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        module_id: str | None = None,
        stream: StreamName = "events",
    ) -> Event:
        if type == "module.completed" and self.dying:
            runs = await self.store.list_module_runs(task_id)
            if not self.last or all(r.status is ModuleStatus.DONE for r in runs):
                self.dying = False
                raise Killed
        return await super().publish(task_id, type, payload, module_id=module_id, stream=stream)


def _master(root: Path, store: SQLiteStore, bus: SQLiteLogBus) -> MasterAgent:
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    offline = build_router(settings, store, available={"offline"})
    build = BuildMaster(
        store=store, bus=bus, router=offline, attachments=Attachments(root / "attachments")
    )
    return MasterAgent(
        store=store,
        bus=bus,
        build=build,
        personas=PersonaLibrary.load(),
        pricing=offline,
        repos=LocalGitRepos(root / "repos"),
        decider=AutoDecider(),
        locks=TaskLocks(root / "locks"),
        router=offline,
        intake_budget_nano=10**9,
        quality_revision=False,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    yield store
    await store.close()


@pytest.mark.parametrize("last", [False, True], ids=["first-module", "last-module"])
async def test_a_completion_a_kill_cut_off_is_announced_once_on_resume(
    tmp_path: Path, store: SQLiteStore, last: bool
) -> None:
    bus = DiesBeforeCompletion(tmp_path / "b.db", store, last=last)
    await bus.open()
    try:
        master = _master(tmp_path, store, bus)
        with pytest.raises(Killed):
            await master.run(REQUEST, budget_usd=5)
        master.locks.release_all()  # the OS drops a dead process's locks
        (task,) = await store.list_tasks()
        runs = await store.list_module_runs(task.id)
        cut_off = [
            r.module_id
            for r in runs
            if r.status is ModuleStatus.DONE
            and not any(
                e.type == "module.completed" and e.module_id == r.module_id
                for e in await bus.replay(task.id)
            )
        ]
        assert cut_off, "the kill fell between a done row and its event"

        try:
            result = await master.resume(task.id)
        finally:
            master.locks.release_all()

        assert result.status == "completed", result.error
        completed = [e.module_id for e in await bus.replay(task.id) if e.type == "module.completed"]
        modules = [r.module_id for r in await store.list_module_runs(task.id)]
        assert sorted(completed) == sorted(modules), "one module.completed per module"
        rows = {r.module_id: r for r in await store.list_module_runs(task.id)}
        for event in await bus.replay(task.id):
            if event.type == "module.completed" and event.module_id in cut_off:
                row = rows[event.module_id]
                assert event.payload["attempts"] == row.attempts, "it ran again"
                assert event.payload["model"] == row.model
                assert event.payload["simulated"] is True  # served offline
    finally:
        await bus.close()
