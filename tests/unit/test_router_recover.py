"""A call whose answer a crash cut off, handed back to the router (``recover``): where the
provider kept the answer it is taken, checked as a live one and booked once, and nothing is asked
again; while the answer may still come (the provider was still generating it) it is waited for;
where none came by the call's deadline, or the request never left, the call is asked again."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from agentfirm.domain.models import LedgerEntry, utcnow
from agentfirm.ids import new_id
from agentfirm.router.base import ProviderRequest, ProviderResponse, SentCall, Usage
from agentfirm.router.reconcile import KEPT_PREFIX, record_deadline
from agentfirm.store.sqlite import SQLiteStore
from tests.unit.test_router import (
    ALPHA,
    MESSAGES,
    SCHEMA,
    ScriptedProvider,
    funded_task,
    make_router,
    reply,
    store,
)

__all__ = ["store"]

WORST = 5_000_000
"""What the dead attempt reserved, and was booked at when its task was taken over."""


class KeepingProvider(ScriptedProvider):
    """Keeps a record of its calls, as OpenAI does with ``openai_store``: ``kept`` by call id.
    ``misses``: how many lookups find nothing before a kept answer shows (it was still being
    generated when its client died); ``looked``: the lookups of answers."""

    def __init__(self, name: str, script: list[ProviderResponse], *, misses: int = 0) -> None:
        super().__init__(name, list(script))
        self.kept: dict[str, ProviderResponse] = {}
        self.misses = misses
        self.looked = 0

    def keeps_record(self, request: ProviderRequest) -> bool:
        return True

    async def lookup_usage(self, call_ids: Sequence[str]) -> Mapping[str, Usage]:
        return {c: self.kept[c].usage for c in call_ids if c in self.kept}

    async def lookup_response(
        self, call_id: str, request: ProviderRequest
    ) -> ProviderResponse | None:
        self.looked += 1
        return self.kept.get(call_id) if self.looked > self.misses else None


class Clock:
    """The wall clock a recovery waits on, moved on by its sleeps."""

    def __init__(self) -> None:
        self.now = utcnow()
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def wait(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


async def _cut_off(store: SQLiteStore, task_id: str, at: datetime | None = None) -> SentCall:
    """An attempt a dead process left in flight (sent ``at``), booked "≤" at its reservation by
    the takeover."""
    call_id = new_id(KEPT_PREFIX)
    row = LedgerEntry(
        call_id=call_id,
        task_id=task_id,
        tier="execution",
        provider=ALPHA.provider,
        model=ALPHA.model,
        outcome="cancelled",
    )
    assert await store.reserve(task_id, call_id, WORST, for_call=row)
    assert await store.release_reservations(task_id) == 1
    return SentCall(call_id, ALPHA.provider, ALPHA.model, at=at)


async def test_a_cut_off_answer_the_provider_kept_is_taken_and_booked_once(
    store: SQLiteStore,
) -> None:
    alpha = KeepingProvider("alpha", [])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    attempt = await _cut_off(store, task_id)
    alpha.kept[attempt.call_id] = reply(json.dumps({"answer": "kept"}))

    result = await router.call(
        tier="execution",
        messages=MESSAGES,
        task_id=task_id,
        output_schema=SCHEMA,
        recover=attempt,
    )

    assert alpha.requests == []  # not asked again
    assert result.data == {"answer": "kept"}
    assert result.call_id == attempt.call_id
    [row] = await store.list_ledger(task_id)
    assert not row.upper_bound
    assert (row.input_tokens, row.output_tokens) == (20, 10)
    assert row.cost_nano == result.cost_nano < WORST
    assert (await store.get_budget(task_id)).spent_nano == row.cost_nano
    # A reconciliation after it finds nothing left to book: the row is not booked twice.
    assert not await router.reconcile(task_id)
    assert (await store.get_budget(task_id)).spent_nano == row.cost_nano


async def test_an_answer_already_booked_by_reconciliation_is_not_booked_again(
    store: SQLiteStore,
) -> None:
    alpha = KeepingProvider("alpha", [])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    attempt = await _cut_off(store, task_id)
    alpha.kept[attempt.call_id] = reply(json.dumps({"answer": "kept"}))
    assert (await router.reconcile(task_id)).found == 1
    spent = (await store.get_budget(task_id)).spent_nano

    result = await router.call(
        tier="execution", messages=MESSAGES, task_id=task_id, output_schema=SCHEMA, recover=attempt
    )

    assert alpha.requests == []
    assert result.data == {"answer": "kept"}
    [row] = await store.list_ledger(task_id)
    assert (await store.get_budget(task_id)).spent_nano == spent == row.cost_nano


async def test_a_cut_off_answer_still_being_generated_is_waited_for_not_asked_again(
    store: SQLiteStore,
) -> None:
    alpha = KeepingProvider("alpha", [reply(json.dumps({"answer": "asked"}))], misses=3)
    clock = Clock()
    router = make_router(store, alpha, clock=clock, wait=clock.wait)
    task_id = await funded_task(store)
    attempt = await _cut_off(store, task_id, at=clock.now)
    alpha.kept[attempt.call_id] = reply(json.dumps({"answer": "kept"}))

    result = await router.call(
        tier="execution", messages=MESSAGES, task_id=task_id, output_schema=SCHEMA, recover=attempt
    )

    assert alpha.requests == []  # waited for, not asked again
    assert alpha.looked == 4
    assert len(clock.slept) == 3
    assert result.data == {"answer": "kept"}
    [row] = await store.list_ledger(task_id)
    assert not row.upper_bound
    assert row.cost_nano == result.cost_nano < WORST


async def test_a_cut_off_call_with_no_record_by_its_deadline_is_asked_again(
    store: SQLiteStore,
) -> None:
    alpha = KeepingProvider("alpha", [reply(json.dumps({"answer": "asked"}))])
    clock = Clock()
    router = make_router(store, alpha, clock=clock, wait=clock.wait, timeout_s=10.0)
    task_id = await funded_task(store)
    sent_at = clock.now
    attempt = await _cut_off(store, task_id, at=sent_at)
    seen: list[SentCall] = []

    async def sent(call: SentCall) -> None:
        seen.append(call)

    result = await router.call(
        tier="execution",
        messages=MESSAGES,
        task_id=task_id,
        output_schema=SCHEMA,
        recover=attempt,
        sent=sent,
    )

    # Looked for until its record could no longer come, and only then asked again.
    assert clock.now == sent_at + record_deadline(10.0)
    assert alpha.looked == len(clock.slept) + 1 > 2
    assert len(alpha.requests) == 1
    assert result.data == {"answer": "asked"}
    # The new attempt was named before it left, under its own id.
    assert [s.call_id for s in seen] == [result.call_id] != [attempt.call_id]


async def test_a_cut_off_call_that_never_left_is_asked_again_at_once(
    store: SQLiteStore,
) -> None:
    alpha = KeepingProvider("alpha", [reply(json.dumps({"answer": "asked"}))])
    clock = Clock()
    router = make_router(store, alpha, clock=clock, wait=clock.wait)
    task_id = await funded_task(store)
    # Journaled as about to be sent, then the process died before it reserved: no "≤" row.
    attempt = SentCall(new_id(KEPT_PREFIX), ALPHA.provider, ALPHA.model, at=clock.now)

    result = await router.call(
        tier="execution", messages=MESSAGES, task_id=task_id, output_schema=SCHEMA, recover=attempt
    )

    assert clock.slept == []
    assert alpha.looked == 1
    assert len(alpha.requests) == 1
    assert result.data == {"answer": "asked"}


async def test_a_cut_off_repair_the_provider_kept_is_taken_after_the_answer_it_repairs(
    store: SQLiteStore,
) -> None:
    alpha = KeepingProvider("alpha", [])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    first = await _cut_off(store, task_id)
    repair = dataclasses.replace(await _cut_off(store, task_id), repair=True)
    alpha.kept[first.call_id] = reply("not json")
    alpha.kept[repair.call_id] = reply(json.dumps({"answer": "repaired"}))

    result = await router.call(
        tier="execution",
        messages=MESSAGES,
        task_id=task_id,
        output_schema=SCHEMA,
        recover=dataclasses.replace(first, repaired=repair),
    )

    assert alpha.requests == []  # neither asked again
    assert result.data == {"answer": "repaired"}
    assert result.call_id == repair.call_id
    rows = await store.list_ledger(task_id)
    assert len(rows) == 2
    assert not any(r.upper_bound for r in rows)
    assert result.cost_nano == sum(r.cost_nano for r in rows)


async def test_the_repair_ask_is_told_as_sent_and_marked_so(store: SQLiteStore) -> None:
    alpha = KeepingProvider("alpha", [reply("not json"), reply(json.dumps({"answer": "ok"}))])
    router = make_router(store, alpha)
    task_id = await funded_task(store)
    seen: list[SentCall] = []

    async def sent(call: SentCall) -> None:
        seen.append(call)

    result = await router.call(
        tier="execution", messages=MESSAGES, task_id=task_id, output_schema=SCHEMA, sent=sent
    )

    assert [s.repair for s in seen] == [False, True]
    assert seen[1].call_id == result.call_id
