"""The Master Agent hands every event of a task to the front end's observer, exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Event
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteLogBus, Path]]:
    store, bus = SQLiteStore(tmp_path / "store.db"), SQLiteLogBus(tmp_path / "bus.db")
    await store.open()
    await bus.open()
    yield store, bus, tmp_path
    await bus.close()
    await store.close()


async def test_a_slow_observer_still_sees_every_recorded_event_once(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    router = build_router(settings, store, available={"offline"})
    seen: list[int] = []

    async def observer(event: Event) -> None:
        # a front end that takes its time: the pump is often inside this await when the work ends
        await asyncio.sleep(0.002)
        seen.append(event.seq)

    locks = TaskLocks(root / "locks")
    master = MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router, max_concurrency=4),
        personas=PersonaLibrary.load(),
        pricing=router,
        repos=LocalGitRepos(root / "repos"),
        decider=AutoDecider(),
        locks=locks,
        observer=observer,
    )

    result = await master.run(REQUEST, persona="patent_research", budget_usd="5")
    locks.release_all()

    assert result.status == "completed"
    recorded = [e.seq for e in await store.list_events(result.task_id)]
    assert seen == recorded
    assert recorded == list(range(1, len(recorded) + 1))


class _SlowToStopBus:
    """The SQLite log, whose subscription takes its time to let go once cancelled (as a
    connection being handed back does): the driver may be cancelled while it waits for it."""

    def __init__(self, bus: SQLiteLogBus) -> None:
        self.bus = bus
        self.following = asyncio.Event()
        self.letting_go = asyncio.Event()

    async def replay(self, task_id: str, *, after_seq: int = 0) -> list[Event]:
        return await self.bus.replay(task_id, after_seq=after_seq)

    async def subscribe(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[Event]:
        self.following.set()
        try:
            async for event in self.bus.subscribe(task_id, after_seq=after_seq):
                yield event
        finally:
            self.letting_go.set()
            await asyncio.sleep(30)


async def test_cancelling_a_driver_while_its_pump_stops_cancels_the_driver(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    """Right after an abort the build's work returns and the pump is stopped; a cancel that
    arrives then (the daemon stopping) ends the driver, it is not taken for the pump's own."""
    from agentfirm.master.events import EventPump

    store, bus, _ = parts
    slow = _SlowToStopBus(bus)

    async def no_budget(task_id: str, payload: dict[str, object]) -> None:
        return None

    pump = EventPump(store, slow, None, no_budget)  # type: ignore[arg-type]

    async def driver() -> None:
        await pump.around("t-1", slow.following.wait())  # the build answered the abort
        await asyncio.Event().wait()  # what follows: a review nobody answers

    running = asyncio.create_task(driver())
    await slow.letting_go.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 10)
