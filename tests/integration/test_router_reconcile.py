"""Reconciling "≤" rows from OpenAI's stored completions (``router.reconcile``), over the real
SDK and the loopback fake: a call cut off unanswered is booked again at the usage OpenAI stored
for it; one OpenAI has no record of stays "≤" until its deadline has passed, then costs $0."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta

import pytest

from agentfirm.domain.models import LedgerEntry, utcnow
from agentfirm.ids import new_id
from agentfirm.router.base import ChainEntry, Message, Usage
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.router.reconcile import KEPT_PREFIX, Reconciled, Reconciler
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.http_fake import Recorded, Reply, running
from tests.fakes.metering import Rates
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.routing import funded_task, router_for

pytestmark = pytest.mark.integration

MODEL = "gpt-5-mini"
RATES = Rates(input=250, output=2_000, cached_input=25)  # gpt-5-mini's list prices, nano/token
SECRETS = {"OPENAI_API_KEY": "sk-proj-reconcile-01"}
DEADLINE = timedelta(minutes=5)


@pytest.fixture(scope="module")
def fake() -> Iterator[OpenAIFake]:
    with running(OpenAIFake(rates={MODEL: RATES})) as server:
        yield server


@pytest.fixture
async def openai(fake: OpenAIFake) -> AsyncIterator[OpenAIProvider]:
    fake.reset()
    provider = OpenAIProvider(get_secret=SECRETS.get, base_url=f"{fake.url}/v1", store_calls=True)
    yield provider
    await provider.aclose()


def _price(row: LedgerEntry, usage: Usage) -> int:
    return Pricer().price_nano(ChainEntry(row.provider, row.model), usage)


def _reconciler(store: SQLiteStore, openai: OpenAIProvider, now: datetime) -> Reconciler:
    return Reconciler(
        store=store,
        providers={"openai": openai},
        price=_price,
        deadline=DEADLINE,
        clock=lambda: now,
    )


async def test_a_call_cut_off_unanswered_is_rebooked_at_the_usage_openai_stored(
    fake: OpenAIFake, openai: OpenAIProvider, store: SQLiteStore
) -> None:
    arrived = threading.Event()

    def hang(request: Recorded) -> Reply:
        arrived.set()
        return fake.hang(5)

    fake.respond_with(hang)
    router = router_for(
        store, {"openai": openai}, [f"openai:{MODEL}"], timeout_s=10, cancel_grace_s=0.1
    )
    task_id = await funded_task(store)
    messages = [Message("user", "Summarise the market for heat pumps in Norway.")]
    call = asyncio.create_task(router.call(tier="utility", messages=messages, task_id=task_id))
    assert await asyncio.to_thread(arrived.wait, 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    [estimate] = await store.list_ledger(task_id)
    assert estimate.upper_bound
    # Sent stored, under the ledger's id of the call and nothing else.
    [sent] = fake.requests
    assert sent.body["store"] is True
    assert sent.body["metadata"] == {"agentfirm_call_id": estimate.call_id}
    assert estimate.call_id.startswith(f"{KEPT_PREFIX}_")

    done = await router.reconcile(task_id)

    assert done == Reconciled(found=1)
    [row] = await store.list_ledger(task_id)
    [billed] = fake.bill.items
    assert (row.input_tokens, row.output_tokens) == (billed.input_tokens, billed.output_tokens)
    assert (row.outcome, row.upper_bound) == ("cancelled", False)
    assert row.cost_nano == fake.bill.nano < estimate.cost_nano
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (fake.bill.nano, 0)
    # Exact now: a second pass asks nothing and changes nothing.
    lookups = fake.lookups
    assert await router.reconcile(task_id) == Reconciled()
    assert fake.lookups == lookups


async def _estimate(store: SQLiteStore, task_id: str, call_id: str, reserved: int) -> None:
    await store.record_call(
        LedgerEntry(
            call_id=call_id,
            task_id=task_id,
            tier="utility",
            provider="openai",
            model=MODEL,
            cost_nano=reserved,
            outcome="cancelled",
        )
    )


async def test_a_call_openai_has_no_record_of_stays_an_upper_bound_until_its_deadline(
    openai: OpenAIProvider, store: SQLiteStore
) -> None:
    task_id = await funded_task(store)
    kept, unkept = new_id(KEPT_PREFIX), new_id("call")
    await _estimate(store, task_id, kept, 5_000)
    await _estimate(store, task_id, unkept, 7_000)
    soon = utcnow() + DEADLINE / 2

    assert await _reconciler(store, openai, soon).reconcile(task_id) == Reconciled(left=2)
    assert [r.upper_bound for r in await store.list_ledger(task_id)] == [True, True]

    # Past its deadline, a call sent to be stored with no record was never billed: $0. One
    # sent without a lookup key (the setting was off) proves nothing by its absence: kept "≤".
    later = utcnow() + DEADLINE * 2
    done = await _reconciler(store, openai, later).reconcile(task_id)

    assert done == Reconciled(unbilled=1, left=1)
    rows = {r.call_id: r for r in await store.list_ledger(task_id)}
    assert (rows[kept].cost_nano, rows[kept].upper_bound) == (0, False)
    assert (rows[unkept].cost_nano, rows[unkept].upper_bound) == (7_000, True)
    assert (await store.get_budget(task_id)).spent_nano == 7_000


async def test_lookup_usage_lists_stored_completions_by_call_id_through_the_sdk(
    fake: OpenAIFake, openai: OpenAIProvider, store: SQLiteStore
) -> None:
    router = router_for(store, {"openai": openai}, [f"openai:{MODEL}"])
    task_id = await funded_task(store)
    for n in range(3):
        await router.call(tier="utility", messages=[Message("user", "x" * n)], task_id=task_id)
    rows = await store.list_ledger(task_id)

    found = await openai.lookup_usage([r.call_id for r in rows] + [new_id(KEPT_PREFIX)])

    assert {call_id: (u.input_tokens, u.output_tokens) for call_id, u in found.items()} == {
        r.call_id: (r.input_tokens, r.output_tokens) for r in rows
    }
    assert len(fake.stored) == 3


async def test_calls_are_not_stored_unless_the_setting_says_so(
    fake: OpenAIFake, store: SQLiteStore
) -> None:
    fake.reset()
    provider = OpenAIProvider(get_secret=SECRETS.get, base_url=f"{fake.url}/v1")
    try:
        router = router_for(store, {"openai": provider}, [f"openai:{MODEL}"])
        task_id = await funded_task(store)
        await router.call(tier="utility", messages=[Message("user", "hi")], task_id=task_id)
    finally:
        await provider.aclose()

    [sent] = fake.requests
    assert "store" not in sent.body
    assert "metadata" not in sent.body
    assert fake.stored == []
    [row] = await store.list_ledger(task_id)
    assert row.call_id.startswith("call_")
