"""Web-search fees on the ledger: Anthropic bills each server-side search ($10 per 1,000) on top of
tokens; the real SDK reads the count from the loopback fake's ``server_tool_use`` usage. Gemini 2.x
bills each prompt grounded by Google Search ($35 per 1,000) whatever number of queries it ran;
the SDK reads the grounding from the Gemini fake's candidate metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from agentfirm.errors import BudgetExceeded
from agentfirm.money import usd_to_nano
from agentfirm.router.base import ChainEntry, Message, ProviderRequest, Usage, web_search_allowed
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.anthropic import MAX_WEB_SEARCHES, AnthropicProvider
from agentfirm.router.providers.gemini import GeminiProvider
from agentfirm.router.router import Router
from agentfirm.router.tokens import input_bound
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.anthropic_fake import AnthropicFake, AnthropicUsage
from tests.fakes.gemini_fake import GeminiFake, GeminiUsage
from tests.fakes.http_fake import running
from tests.fakes.routing import funded_task, list_price_nano, router_for

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


def searched_input_bound(searches: int) -> int:
    """The input a searched call reserves: its messages and ``searches`` searches' pages."""
    request = ProviderRequest("m", tuple(MESSAGES), MAX_TOKENS, "utility", web_search=True)
    return input_bound(request, searches=searches)


def worst_case_nano(*, web_searches: int) -> int:
    return Pricer().worst_case_nano(
        ENTRY,
        searched_input_bound(MAX_WEB_SEARCHES),
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


GEMINI_MODEL = "gemini-2.5-flash"
GEMINI_ENTRY = ChainEntry("gemini", GEMINI_MODEL)
GROUNDING_FEE_USD = Decimal(35) / 1000  # Gemini 2.x: $35 per 1,000 grounded prompts
PAGE = "https://kaltwerk.example/prices-2024"


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[GeminiFake]:
    with running(GeminiFake()) as server:
        yield server


def gemini_router_for(fake: GeminiFake, store: SQLiteStore, model: str) -> Router:
    keys = {"GEMINI_API_KEY": "AIzaSyTest-Key-000000000000001"}
    provider = GeminiProvider(get_secret=keys.get, base_url=fake.url)
    return router_for(store, {"gemini": provider}, [f"gemini:{model}"], timeout_s=5)


@pytest.fixture
async def gemini_router(gemini_fake: GeminiFake, store: SQLiteStore) -> AsyncIterator[Router]:
    gemini_fake.reset()
    routed = gemini_router_for(gemini_fake, store, GEMINI_MODEL)
    yield routed
    await routed.aclose()


def gemini_tokens_nano(usage: GeminiUsage, model: str = GEMINI_MODEL) -> int:
    return list_price_nano(
        model, "google", input_tokens=usage.prompt, output_tokens=usage.candidates
    )


async def test_a_grounded_gemini_prompt_is_billed_one_search_on_the_ledger(
    gemini_fake: GeminiFake, gemini_router: Router, store: SQLiteStore
) -> None:
    usage = GeminiUsage(prompt=400, candidates=90)
    # Three queries behind one grounded prompt: Gemini 2.x bills the prompt, once.
    gemini_fake.script(
        gemini_fake.grounded(
            "EUR 1,180 per unit.", uri=PAGE, title="Prices", queries=3, usage=usage
        )
    )
    task_id = await funded_task(store)

    with web_search_allowed():
        result = await gemini_router.call(
            tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
        )

    assert gemini_fake.requests[-1].body["tools"] == [{"googleSearch": {}}]
    expected = gemini_tokens_nano(usage) + usd_to_nano(GROUNDING_FEE_USD)
    (row,) = await store.list_ledger(task_id)
    assert result.usage.web_searches == 1
    assert row.cost_nano == expected
    assert result.cost_nano == expected
    assert (await store.get_budget(task_id)).spent_nano == expected


async def test_an_ungrounded_gemini_answer_pays_no_search_fee(
    gemini_fake: GeminiFake, gemini_router: Router, store: SQLiteStore
) -> None:
    usage = GeminiUsage(prompt=400, candidates=90)
    # The tool is offered, but the model answers without searching: no grounding metadata.
    gemini_fake.script(gemini_fake.ok("EUR 1,180 per unit.", usage=usage))
    task_id = await funded_task(store)

    with web_search_allowed():
        result = await gemini_router.call(
            tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
        )

    assert gemini_fake.requests[-1].body["tools"] == [{"googleSearch": {}}]
    assert result.usage.web_searches == 0
    (row,) = await store.list_ledger(task_id)
    assert row.cost_nano == result.cost_nano == gemini_tokens_nano(usage)


async def test_a_gemini_reservation_covers_the_grounding_fee(
    gemini_fake: GeminiFake, gemini_router: Router, store: SQLiteStore
) -> None:
    gemini_fake.script(gemini_fake.ok("EUR 1,180 per unit."))
    worst_tokens = Pricer().worst_case_nano(GEMINI_ENTRY, searched_input_bound(1), MAX_TOKENS)
    # Room for every token the call may spend and half its grounding fee.
    ceiling = worst_tokens + usd_to_nano(GROUNDING_FEE_USD) // 2
    task_id = await funded_task(store, ceiling_nano=ceiling)

    with web_search_allowed(), pytest.raises(BudgetExceeded):
        await gemini_router.call(
            tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
        )

    assert gemini_fake.requests == []
    # Without search the same call fits.
    await gemini_router.call(
        tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
    )
    assert len(gemini_fake.requests) == 1


async def test_a_gemini_3_grounded_answer_is_billed_per_query(
    gemini_fake: GeminiFake, store: SQLiteStore
) -> None:
    model = "gemini-3-flash-preview"
    usage = GeminiUsage(prompt=400, candidates=90)
    gemini_fake.reset()
    gemini_fake.script(
        gemini_fake.grounded(
            "EUR 1,180 per unit.", uri=PAGE, title="Prices", queries=3, usage=usage
        )
    )
    routed = gemini_router_for(gemini_fake, store, model)
    task_id = await funded_task(store)
    try:
        with web_search_allowed():
            result = await routed.call(
                tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
            )
    finally:
        await routed.aclose()

    assert result.usage.web_searches == 3
    # Gemini 3: $14 per 1,000 search queries.
    expected = gemini_tokens_nano(usage, model) + usd_to_nano(3 * Decimal(14) / 1000)
    assert result.cost_nano == expected
    (row,) = await store.list_ledger(task_id)
    assert row.cost_nano == expected


async def test_a_gemini_3_reservation_covers_several_queries(
    gemini_fake: GeminiFake, store: SQLiteStore
) -> None:
    """Gemini 3 bills each query: a budget with room for one query's fee but not three's
    refuses the call before it is sent, rather than let a three-query answer overspend it."""
    model = "gemini-3-flash-preview"
    entry = ChainEntry("gemini", model)
    one_query = Pricer().worst_case_nano(entry, searched_input_bound(1), MAX_TOKENS, web_searches=1)
    gemini_fake.reset()
    gemini_fake.script(
        gemini_fake.grounded("EUR 1,180 per unit.", uri=PAGE, title="Prices", queries=3)
    )
    routed = gemini_router_for(gemini_fake, store, model)
    task_id = await funded_task(store, ceiling_nano=one_query)
    try:
        with web_search_allowed(), pytest.raises(BudgetExceeded):
            await routed.call(
                tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
            )
    finally:
        await routed.aclose()

    assert gemini_fake.requests == []
    assert (await store.get_budget(task_id)).spent_nano == 0
