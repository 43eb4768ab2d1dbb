"""A worker taking over a claim whose holder looked dead releases only the reservations no live
call can still settle (older than the provider timeout plus a grace): a holder that was only slow
keeps the holds of its calls in flight, and when such a call settles, the ledger books what it
cost. Real Redis + Postgres, one process."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest

from agentfirm.app import App
from agentfirm.bus.redis_work import RedisWorkQueue, WorkClaim
from agentfirm.domain.calls import stale_reservation_age
from agentfirm.domain.models import LedgerEntry
from agentfirm.master.decisions import AutoDecider
from agentfirm.runs.worker import Worker, WorkerOptions

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
# A guard against hanging forever when a behaviour is broken, not a timing assertion.
GUARD_S = 30


async def _first_claim(queue: RedisWorkQueue, consumer: str) -> WorkClaim:
    while (claim := await queue.claim(consumer, block_ms=200)) is None:
        pass
    return claim


def _row(task_id: str, call_id: str, cost_nano: int) -> LedgerEntry:
    return LedgerEntry(
        call_id=call_id,
        task_id=task_id,
        tier="execution",
        provider="offline",
        model="m",
        cost_nano=cost_nano,
        simulated=True,
    )


async def test_a_takeover_releases_a_dead_holders_old_reservations_but_not_a_slow_ones(
    app: App,
    queue: RedisWorkQueue,
    pg_url: str,
) -> None:
    running = asyncio.create_task(app.master(AutoDecider()).run(REQUEST))
    store = app.store
    async with asyncio.timeout(GUARD_S):
        first = await _first_claim(queue, "first")  # the holder that goes quiet
        task_id = first.task_id
        # The Master stops waiting, so the task is not finished (which would release every
        # hold) while its holds are looked at; the queued work stays for the workers.
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        # The first holder's calls: one made long before it died (nobody will settle it), one
        # still in flight (the holder is only slow: it will settle it).
        # Made as the router makes them, with the call's row: the request may have left.
        dead_row = _row(task_id, "abandoned_call", 0).model_copy(update={"outcome": "cancelled"})
        assert await store.reserve(task_id, "abandoned_call", 1_000, for_call=dead_row)
        assert await store.reserve(task_id, "in_flight_call", 2_000)
        age = stale_reservation_age(app.settings.provider_timeout_s)
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(
                "UPDATE reservations SET created_at = created_at - %s WHERE call_id = %s",
                (age * 2, "abandoned_call"),
            )
            taken = await queue.claim("second", block_ms=None, min_idle_ms=0)
            assert taken is not None
            assert taken.reclaimed

            await Worker(app, queue, WorkerOptions(name="second")).process(taken)
            cur = await conn.execute(
                "SELECT call_id, amount_nano FROM reservations WHERE task_id = %s", (task_id,)
            )
            held = await cur.fetchall()
        # The slow holder's call ends after all, and is booked at what it cost.
        await store.settle("in_flight_call", _row(task_id, "in_flight_call", 1_500))

    assert held == [("in_flight_call", 2_000)]  # only the abandoned hold was released
    budget = await store.get_budget(task_id)
    ledger = await store.list_ledger(task_id)
    assert budget.reserved_nano == 0
    assert [e.cost_nano for e in ledger if e.call_id == "in_flight_call"] == [1_500]
    # The dead holder's call reached the provider as far as anyone knows: booked once, at its
    # reservation, as an upper bound.
    abandoned = [e for e in ledger if e.call_id == "abandoned_call"]
    assert [(e.cost_nano, e.outcome, e.upper_bound) for e in abandoned] == [
        (1_000, "cancelled", True)
    ]
    assert sum(e.cost_nano for e in ledger) == budget.spent_nano
    assert budget.spent_nano <= budget.ceiling_nano
