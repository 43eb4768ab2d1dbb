"""A daemon that takes over a task on start releases the budget reservations a dead process left
behind before the task calls again — else they would hold its budget for good — and the books
stay honest: spent is what the ledger says, the dead call booked nowhere."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from agentfirm.daemon.service import TaskHost
from keyring.backends import fail

from agentfirm.domain.models import LedgerEntry
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings, load_settings

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
DEAD_CALL = "call_left_by_a_dead_process"
SENT_CALL = "call_sent_by_a_dead_process"


def _settings(home: Path, latency: str) -> Settings:
    env = {"AGENTFIRM_HOME": str(home), "AGENTFIRM_OFFLINE_LATENCY_MS": latency}
    return load_settings(env, cwd=home)


async def _host(settings: Settings) -> TaskHost:
    redactor = Redactor()
    secrets = SecretStore(redactor, env={}, backend=fail.Keyring())
    return await TaskHost.open(settings, redactor=redactor, secrets=secrets)


async def _asked(host: TaskHost, task_id: str, *kinds: str) -> tuple[str, str]:
    """The kind and id of the next approval of one of ``kinds`` the task asks; clarifying
    questions are left to assumptions."""
    async for event in host.app.bus.subscribe(task_id):
        if event.type != "approval.requested":
            continue
        approval_id = str(event.payload["approval_id"])
        if event.payload["kind"] in kinds:
            return str(event.payload["kind"]), approval_id
        pending = {a.id for a in await host.decider.pending(task_id)}
        if event.payload["kind"] == "clarify" and approval_id in pending:
            await host.decide(approval_id, "rejected", actor="cli:ann")
    raise AssertionError("the bus closed")


async def test_the_daemon_releases_a_dead_processs_reservation_before_calling_again(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    first = await _host(_settings(home, latency="150"))
    task_id = (await first.submit(REQUEST, offline=True))["task_id"]
    _kind, plan_id = await asyncio.wait_for(_asked(first, task_id, "plan"), 20)
    await first.decide(plan_id, "approved", actor="cli:ann")
    async for event in first.app.bus.subscribe(task_id):
        if event.type == "module.completed":
            break
    await first.close()

    second = await _host(_settings(home, latency="0"))
    try:
        store = second.app.store
        # What a process killed mid-call leaves: a reservation nobody will settle. It holds all
        # that is left of the budget, so if it stayed, no further call would fit.
        budget = await store.get_budget(task_id)
        # And one made as the router makes them, with its call's row: the request may have
        # reached the provider, which bills it, so it is booked at its reservation.
        sent = LedgerEntry(
            call_id=SENT_CALL, task_id=task_id, tier="execution", provider="offline", model="m"
        )
        assert await store.reserve(task_id, SENT_CALL, 1_000, for_call=sent)
        assert await store.reserve(task_id, DEAD_CALL, budget.available_nano - 1_000)
        spent_before = budget.spent_nano

        assert await second.start() == [task_id]
        kind, asked = await asyncio.wait_for(_asked(second, task_id, "review", "budget"), 30)
        if kind == "budget":  # the leftover still held the budget: end the driver, then fail
            await second.decide(asked, "aborted", actor="cli:ann")
        assert kind == "review", "the dead process's reservation held the budget"
        await second.decide(asked, "approved", actor="cli:ann")
        async for _event in second.follow(task_id):
            pass

        assert (await store.get_task(task_id)).status == "completed"
        budget = await store.get_budget(task_id)
        ledger = await store.list_ledger(task_id)
        assert budget.reserved_nano == 0
        assert budget.spent_nano == sum(row.cost_nano for row in ledger) > spent_before
        assert DEAD_CALL not in {row.call_id for row in ledger}
        booked = [row for row in ledger if row.call_id == SENT_CALL]
        assert [(r.cost_nano, r.outcome, r.upper_bound) for r in booked] == [
            (1_000, "cancelled", True)
        ]
    finally:
        await second.close()
