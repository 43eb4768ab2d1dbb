"""Web-search fees on the ledger: Anthropic bills each server-side search ($10 per 1,000) on top of
tokens; the real SDK reads the count from the loopback fake's ``server_tool_use`` usage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentfirm.errors import BudgetExceeded
from agentfirm.money import usd_to_nano
from agentfirm.router.base import ChainEntry, Message, Usage, web_search_allowed
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.anthropic import MAX_WEB_SEARCHES, AnthropicProvider
from agentfirm.router.router import Router
from agentfirm.router.tokens import estimate_messages
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.anthropic_fake import AnthropicFake, AnthropicUsage
from tests.fakes.http_fake import running
from tests.fakes.routing import funded_task, router_for

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-6"
ENTRY = ChainEntry("anthropic", MODEL)
MESSAGES = (Message("user", "What does Kaltwerk list as the 2024 unit price?"),)
MAX_TOKENS = 512
SEARCH_FEE_USD = Decimal("0.01")  # Anthropic: $10 per 1,000 searches


@pytest.fixture(scope="module")
def fake() -> Iterator[AnthropicFake]:
    with running(AnthropicFake()) as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def router(fake: AnthropicFake, store: SQLiteStore) -> AsyncIterator[Router]:
    fake.reset()
    keys = {"ANTHROPIC_API_KEY": "sk-ant-api03-test-key-0001"}
    provider = AnthropicProvider(get_secret=keys.get, base_url=fake.url)
    routed = router_for(store, {"anthropic": provider}, [ENTRY.label], timeout_s=5)
    yield routed
    await routed.aclose()


def token_price_nano(usage: AnthropicUsage) -> int:
    return Pricer().price_nano(
        ENTRY, Usage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
    )


async def test_searches_are_billed_per_search_on_the_ledger(
    fake: AnthropicFake, router: Router, store: SQLiteStore
) -> None:
    usage = AnthropicUsage(input_tokens=400, output_tokens=90, web_search_requests=2)
    fake.script(fake.ok("EUR 1,180 per unit.", usage=usage))
    task_id = await funded_task(store)

    with web_search_allowed():
        result = await router.call(
            tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
        )

    expected = token_price_nano(usage) + usd_to_nano(2 * SEARCH_FEE_USD)
    (row,) = await store.list_ledger(task_id)
    assert row.cost_nano == expected
    assert result.cost_nano == expected
    assert result.usage.web_searches == 2
    assert (await store.get_budget(task_id)).spent_nano == expected


async def test_a_call_without_search_pays_no_search_fee(
    fake: AnthropicFake, router: Router, store: SQLiteStore
) -> None:
    usage = AnthropicUsage(input_tokens=400, output_tokens=90, web_search_requests=2)
    fake.script(fake.ok("EUR 1,180 per unit.", usage=usage))
    task_id = await funded_task(store)

    result = await router.call(
        tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
    )

    assert "tools" not in fake.requests[-1].body
    assert result.usage.web_searches == 0
    assert result.cost_nano == token_price_nano(usage)


def worst_case_nano(*, web_searches: int) -> int:
    return Pricer().worst_case_nano(
        ENTRY,
        estimate_messages(MESSAGES),
        MAX_TOKENS,
        cache_writes=True,
        web_searches=web_searches,
    )


async def test_reservation_covers_the_most_searches_a_call_may_run(
    fake: AnthropicFake, router: Router, store: SQLiteStore
) -> None:
    fake.script(fake.ok("EUR 1,180 per unit."))
    # Room for every token the call may spend and all but one of its searches.
    ceiling = worst_case_nano(web_searches=MAX_WEB_SEARCHES - 1) + usd_to_nano(SEARCH_FEE_USD) // 2
    task_id = await funded_task(store, ceiling_nano=ceiling)

    with web_search_allowed(), pytest.raises(BudgetExceeded):
        await router.call(tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS)

    assert fake.requests == []
    # Without search the same call fits.
    await router.call(tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS)
    assert len(fake.requests) == 1
