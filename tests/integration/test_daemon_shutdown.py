"""Closing the daemon while a task waits at its budget question (SIGTERM): the drivers stop, the
store and bus close, and the next start picks the task up where it waited — the same question,
which once answered lets the task finish."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from agentfirm.daemon.service import TaskHost
from keyring.backends import fail

from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings, load_settings

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
HANG_GUARD_S = 60
"""Not a timing assertion: only a bound so that a hang fails the test instead of the suite."""


def _settings(home: Path) -> Settings:
    env = {"AGENTFIRM_HOME": str(home), "AGENTFIRM_OFFLINE_LATENCY_MS": "0"}
    return load_settings(env, cwd=home)


async def _host(home: Path) -> TaskHost:
    redactor = Redactor()
    secrets = SecretStore(redactor, env={}, backend=fail.Keyring())
    return await TaskHost.open(_settings(home), redactor=redactor, secrets=secrets)


async def _asked(host: TaskHost, task_id: str, kind: str) -> str:
    """The id of the next approval of ``kind`` the task asks; clarifying questions are left to
    assumptions."""
    async for event in host.app.bus.subscribe(task_id):
        if event.type != "approval.requested":
            continue
        approval_id = str(event.payload["approval_id"])
        if event.payload["kind"] == kind:
            return approval_id
        pending = {a.id for a in await host.decider.pending(task_id)}
        if event.payload["kind"] == "clarify" and approval_id in pending:
            await host.decide(approval_id, "rejected", actor="cli:ann")
    raise AssertionError("the bus closed")


async def test_closing_while_a_task_waits_for_budget_stops_and_the_next_start_asks_again(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    first = await _host(home)
    task_id = (await first.submit(REQUEST, offline=True, budget_usd=Decimal("0.05")))["task_id"]
    plan_id = await asyncio.wait_for(_asked(first, task_id, "plan"), HANG_GUARD_S)
    await first.decide(plan_id, "approved", actor="cli:ann")
    budget_id = await asyncio.wait_for(_asked(first, task_id, "budget"), HANG_GUARD_S)

    await asyncio.wait_for(first.close(), HANG_GUARD_S)  # hung for good before the fix

    second = await _host(home)
    try:
        store = second.app.store
        assert (await store.get_task(task_id)).status == "awaiting_budget"
        (pending,) = await second.decider.pending(task_id)
        assert (pending.id, pending.kind) == (budget_id, "budget")
        # The question stays open for the human: nothing drives the task until it is answered.
        assert await second.start() == []
        await second.decide(budget_id, "approved", actor="cli:ann", budget_usd=Decimal("5"))
        review_id = await asyncio.wait_for(_asked(second, task_id, "review"), HANG_GUARD_S)
        await second.decide(review_id, "approved", actor="cli:ann")
        async for _event in second.follow(task_id):
            pass

        task = await store.get_task(task_id)
        assert (task.status, task.budget_nano) == ("completed", 5_000_000_000)
        budget = await store.get_budget(task_id)
        assert budget.reserved_nano == 0
    finally:
        await asyncio.wait_for(second.close(), HANG_GUARD_S)


async def test_cancelling_a_task_releases_the_reservations_it_still_holds(tmp_path: Path) -> None:
    home = tmp_path / "home"
    host = await _host(home)
    try:
        store = host.app.store
        task_id = (await host.submit(REQUEST, offline=True, budget_usd=Decimal("0.05")))["task_id"]
        plan_id = await asyncio.wait_for(_asked(host, task_id, "plan"), HANG_GUARD_S)
        await host.decide(plan_id, "approved", actor="cli:ann")
        await asyncio.wait_for(_asked(host, task_id, "budget"), HANG_GUARD_S)
        # What a process killed mid-call leaves behind: a reservation nobody will settle.
        assert await store.reserve(task_id, "call_left_by_a_dead_process", 1_000)
        spent = (await store.get_budget(task_id)).spent_nano

        shown = await host.cancel(task_id, actor="cli:ann", reason="changed my mind")

        assert shown["status"] == "aborted"
        assert (await store.get_task(task_id)).status == "aborted"
        assert await host.decider.pending(task_id) == []
        budget = await store.get_budget(task_id)
        assert (budget.reserved_nano, budget.spent_nano) == (0, spent)
    finally:
        await asyncio.wait_for(host.close(), HANG_GUARD_S)
