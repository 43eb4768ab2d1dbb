"""What the router tells a task's people: a call that cost more than it reserved
(``budget.overrun``, booked all the same) and a refused key (``provider.key_refused``, once per
task and provider, naming the key and what took over)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfirm.router.base import ChainEntry, Message, ProviderRequest, ProviderResponse, Usage
from agentfirm.router.errors import ProviderAuthError, ProviderError
from agentfirm.router.pricing import Pricer
from agentfirm.router.router import Router
from agentfirm.settings import PriceOverride
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.routing import Sleeps, funded_task

ALPHA = ChainEntry("alpha", "model-a")
BETA = ChainEntry("beta", "model-b")
# $1 per million tokens in and out: a token costs 1,000 nano-dollars.
PRICER = Pricer(
    {
        m: PriceOverride(input_per_mtok=Decimal(1), output_per_mtok=Decimal(1))
        for m in ("model-a", "model-b")
    }
)
MESSAGES = [Message("user", "Summarise the quarter.")]


class Heard:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(
        self,
        task_id: str,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        module_id: str | None = None,
    ) -> None:
        self.events.append((task_id, type, payload or {}))


class Answering:
    simulated = False

    def __init__(self, name: str, usage: Usage | None = None) -> None:
        self.name = name
        self.usage = usage

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        return ProviderResponse("fine", self.usage or Usage(10, 0, 10), request.model)


class Refusing:
    simulated = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.calls += 1
        raise ProviderAuthError(provider=self.name, key_env="ANTHROPIC_API_KEY", status=401)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


def router(store: SQLiteStore, heard: Heard, *providers: Any, chain: list[ChainEntry]) -> Router:
    return Router(
        chains={"execution": chain},
        providers={p.name: p for p in providers},
        pricer=PRICER,
        store=store,
        sleep=Sleeps(),
        notify=heard,
    )


async def test_a_call_costing_more_than_its_reservation_is_announced_with_the_difference(
    store: SQLiteStore,
) -> None:
    heard = Heard()
    # 1M input tokens: far past any bound of a one-line prompt.
    greedy = Answering("alpha", Usage(input_tokens=1_000_000, output_tokens=10))
    task_id = await funded_task(store, ceiling_nano=10**12)

    result = await router(store, heard, greedy, chain=[ALPHA]).call(
        tier="execution", messages=MESSAGES, task_id=task_id, max_tokens=10
    )

    [(told, kind, payload)] = heard.events
    assert (told, kind) == (task_id, "budget.overrun")
    assert payload["cost_usd"] == pytest.approx(result.cost_nano / 1e9)
    assert payload["overrun_usd"] == pytest.approx(payload["cost_usd"] - payload["reserved_usd"])
    assert payload["overrun_usd"] > 0
    # Booked in full: the ledger is the bill, past the reservation.
    [row] = await store.list_ledger(task_id)
    assert row.cost_nano == result.cost_nano == (await store.get_budget(task_id)).spent_nano


async def test_a_call_within_its_reservation_announces_nothing(store: SQLiteStore) -> None:
    heard = Heard()
    task_id = await funded_task(store)

    await router(store, heard, Answering("alpha"), chain=[ALPHA]).call(
        tier="execution", messages=MESSAGES, task_id=task_id, max_tokens=10
    )

    assert heard.events == []


async def test_a_refused_key_is_told_once_per_task_naming_the_key_and_the_fallback(
    store: SQLiteStore,
) -> None:
    heard = Heard()
    routed = router(store, heard, Refusing("alpha"), Answering("beta"), chain=[ALPHA, BETA])
    first, second = await funded_task(store), await funded_task(store)

    for task_id in (first, first, first, second):
        await routed.call(tier="execution", messages=MESSAGES, task_id=task_id)

    told = {"provider": "alpha", "key": "ANTHROPIC_API_KEY", "took_over": "beta:model-b"}
    assert heard.events == [
        (first, "provider.key_refused", told),
        (second, "provider.key_refused", told),
    ]


async def test_a_refused_key_with_nothing_behind_it_is_told_too(store: SQLiteStore) -> None:
    heard = Heard()
    task_id = await funded_task(store)

    with pytest.raises(ProviderError):  # every entry of the chain failed
        await router(store, heard, Refusing("alpha"), chain=[ALPHA]).call(
            tier="execution", messages=MESSAGES, task_id=task_id
        )

    assert heard.events == [
        (
            task_id,
            "provider.key_refused",
            {"provider": "alpha", "key": "ANTHROPIC_API_KEY", "took_over": None},
        )
    ]
