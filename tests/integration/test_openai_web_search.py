"""OpenAI's own web search: a call allowed to search, on an OpenAI model that has the tool, goes
through the Responses API (the real SDK's ``responses.create`` against the loopback fake) with
the ``web_search`` tool; each search is billed on the ledger at genai-prices' fee ($10 per
1,000) on top of its tokens, and reserved beforehand. The agent loop runs its tools there too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.agent_loop import AgentLoop
from agentfirm.build_master.journal import Journal
from agentfirm.build_master.subagent import LoopSetup, run_subagent
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleSpec, Plan, TaskSpec
from agentfirm.errors import BudgetExceeded
from agentfirm.money import usd_to_nano
from agentfirm.router.base import (
    ChainEntry,
    Message,
    ProviderRequest,
    searches_natively,
    web_search_allowed,
)
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.router.providers.openai_responses import MAX_WEB_SEARCHES, response_of
from agentfirm.router.router import Router
from agentfirm.router.tokens import input_bound
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.tools.catalog import ModuleTools
from tests.fakes.http_fake import Recorded, running
from tests.fakes.openai_fake import OpenAIFake, OpenAIUsage
from tests.fakes.routing import funded_task, list_price_nano, router_for
from tests.integration.test_agent_loop_providers import PriceTool

pytestmark = pytest.mark.integration

MODEL = "gpt-5-mini"
MESSAGES = (Message("user", "What does Kaltwerk list as the 2024 unit price?"),)
MAX_TOKENS = 512
SEARCH_FEE_USD = Decimal("0.01")  # OpenAI: $10 per 1,000 web search calls (genai-prices)
PAGE = "https://kaltwerk.example/prices-2024"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}},
    "required": ["headline"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def fake_server() -> Iterator[OpenAIFake]:
    with running(OpenAIFake()) as server:
        yield server


@pytest.fixture
def fake(fake_server: OpenAIFake) -> OpenAIFake:
    fake_server.reset()
    return fake_server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


def router_on(fake: OpenAIFake, store: SQLiteStore, model: str = MODEL) -> Router:
    provider = OpenAIProvider(get_secret={"OPENAI_API_KEY": "sk-1"}.get, base_url=f"{fake.url}/v1")
    return router_for(store, {"openai": provider}, [f"openai:{model}"], timeout_s=5)


@pytest.fixture
async def router(fake: OpenAIFake, store: SQLiteStore) -> AsyncIterator[Router]:
    routed = router_on(fake, store)
    yield routed
    await routed.aclose()


async def test_a_searched_answer_is_billed_per_search_and_cites_its_pages(
    fake: OpenAIFake, router: Router, store: SQLiteStore
) -> None:
    usage = OpenAIUsage(prompt_tokens=3400, completion_tokens=90)
    fake.script(
        fake.searched(
            text="EUR 1,180 per unit.", searches=2, pages=(("Prices", PAGE),), usage=usage
        )
    )
    task_id = await funded_task(store)

    with web_search_allowed():
        result = await router.call(
            tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
        )

    [sent] = fake.requests
    assert sent.path == "/v1/responses"
    assert {"type": "web_search"} in sent.body["tools"]
    assert (sent.body["max_tool_calls"], sent.body["store"]) == (MAX_WEB_SEARCHES, False)
    assert sent.body["input"] == [{"role": "user", "content": MESSAGES[0].content}]
    assert result.text == f"EUR 1,180 per unit.\n\nSources: [Prices]({PAGE})"
    assert result.usage.web_searches == 2
    expected = list_price_nano(MODEL, "openai", input_tokens=3400, output_tokens=90)
    expected += usd_to_nano(2 * SEARCH_FEE_USD)
    [row] = await store.list_ledger(task_id)
    assert row.cost_nano == result.cost_nano == expected
    assert (await store.get_budget(task_id)).spent_nano == expected
    assert fake.bill.items[0].web_searches == 2


async def test_the_reservation_covers_the_most_searches_a_call_may_run(
    fake: OpenAIFake, router: Router, store: SQLiteStore
) -> None:
    request = ProviderRequest(MODEL, MESSAGES, MAX_TOKENS, "utility", web_search=True)
    worst = Pricer().worst_case_nano(
        ChainEntry("openai", MODEL),
        input_bound(request, searches=MAX_WEB_SEARCHES),
        MAX_TOKENS,
        web_searches=MAX_WEB_SEARCHES - 1,
    )
    # Room for every token the call may spend and all but one of its searches.
    task_id = await funded_task(store, ceiling_nano=worst + usd_to_nano(SEARCH_FEE_USD) // 2)

    with web_search_allowed(), pytest.raises(BudgetExceeded):
        await router.call(tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS)

    assert fake.requests == []
    # Without search the same call fits, and stays on Chat Completions.
    fake.script(fake.ok("EUR 1,180 per unit."))
    await router.call(tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS)
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"]


async def test_a_model_without_the_search_tool_stays_on_chat_completions(
    fake: OpenAIFake, store: SQLiteStore
) -> None:
    assert searches_natively("openai", "gpt-5-mini")
    assert not searches_natively("openai", "gpt-4.1-nano")
    assert not searches_natively("openai_compat", "gpt-5-mini")
    fake.script(fake.ok("EUR 1,180 per unit."))
    router = router_on(fake, store, "gpt-4.1-nano")
    task_id = await funded_task(store)

    with web_search_allowed():
        await router.call(tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=64)
    await router.aclose()

    assert [r.path for r in fake.requests] == ["/v1/chat/completions"]


async def test_a_model_without_the_search_tool_reserves_no_search(
    fake: OpenAIFake, store: SQLiteStore
) -> None:
    """The reservation follows the model called: gpt-4.1-nano never searches, so a budget with
    room for its call but not for searches' result pages lets the call through."""
    model = "gpt-4.1-nano"
    request = ProviderRequest(model, MESSAGES, MAX_TOKENS, "utility", web_search=True)
    entry = ChainEntry("openai", model)
    plain = Pricer().worst_case_nano(entry, input_bound(request), MAX_TOKENS)
    searched = Pricer().worst_case_nano(
        entry,
        input_bound(request, searches=MAX_WEB_SEARCHES),
        MAX_TOKENS,
        web_searches=MAX_WEB_SEARCHES,
    )
    assert searched > plain  # what a per-provider reservation held back
    fake.script(fake.ok("EUR 1,180 per unit."))
    router = router_on(fake, store, model)
    task_id = await funded_task(store, ceiling_nano=plain)

    with web_search_allowed():
        result = await router.call(
            tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=MAX_TOKENS
        )
    await router.aclose()

    assert result.text == "EUR 1,180 per unit."
    assert [r.path for r in fake.requests] == ["/v1/chat/completions"]


async def test_a_model_whose_searches_have_no_price_does_not_search(
    fake: OpenAIFake, store: SQLiteStore
) -> None:
    """o3-mini matches the search models' names but genai-prices lists no search fee for it: a
    search there would be booked as free, so the call goes without (Chat Completions)."""
    assert searches_natively("openai", "o3-mini")
    assert not Pricer().prices_searches(ChainEntry("openai", "o3-mini"))
    assert Pricer().prices_searches(ChainEntry("openai", MODEL))
    fake.script(fake.ok("EUR 1,180 per unit."))
    router = router_on(fake, store, "o3-mini")
    task_id = await funded_task(store)

    with web_search_allowed():
        await router.call(tier="utility", messages=MESSAGES, task_id=task_id, max_tokens=64)
    await router.aclose()

    assert [r.path for r in fake.requests] == ["/v1/chat/completions"]


async def test_the_agent_loop_searches_and_calls_its_tools_over_the_responses_api(
    fake: OpenAIFake, router: Router, store: SQLiteStore, tmp_path: Path
) -> None:
    """Turn 1 searches once and asks for a function; turn 2 gets the function's output as a
    ``function_call_output`` item beside its call, and answers with the structured output."""
    fake.script(
        fake.searched(searches=1, calls=(("call_1", "price_of", {"product": "widget"}),)),
        fake.structured({"headline": "Widgets cost 42 euros"}),
    )
    task_id = await funded_task(store)
    bus = SQLiteLogBus(tmp_path / "bus.db")
    await bus.open()
    tool = PriceTool()
    loop = AgentLoop(
        call=lambda **kw: router.call(task_id=task_id, module_id="pricing", **kw),
        tier="execution",
        output_schema=SCHEMA,
        max_tokens=MAX_TOKENS,
        tools=ModuleTools({"price_of": tool}, web_search=True),
        max_turns=3,
        journal=await Journal.open(bus, task_id, "pricing", list(MESSAGES)),
    )

    outcome = await loop.run(list(MESSAGES))
    await bus.close()

    assert outcome.data == {"headline": "Widgets cost 42 euros"}
    assert tool.calls == [{"product": "widget"}]
    first, second = fake.requests
    assert [r.path for r in fake.requests] == ["/v1/responses"] * 2
    assert [t.get("name", t["type"]) for t in first.body["tools"]] == ["price_of", "web_search"]
    assert first.body["text"]["format"]["type"] == "json_schema"
    # A reasoning model: its reasoning before the call goes back just before the call, usable
    # statelessly (the fake refuses the turn otherwise, as the real API does).
    assert first.body["include"] == ["reasoning.encrypted_content"]
    reasoning, call, output = second.body["input"][-3:]
    assert reasoning == {
        "type": "reasoning",
        "id": "rs_call_1",
        "summary": [{"type": "summary_text", "text": "Look up the price first."}],
        "encrypted_content": "gAAAA-call_1",
    }
    assert (call["type"], call["call_id"], call["name"]) == ("function_call", "call_1", "price_of")
    assert output == {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": "widget: 42 euros",
    }
    assert outcome.call.usage.web_searches == 1
    rows = await store.list_ledger(task_id)
    assert len(rows) == 2
    assert sum(r.cost_nano for r in rows) == outcome.call.cost_nano


async def test_a_structured_answer_keeps_the_pages_it_cites(
    fake: OpenAIFake, store: SQLiteStore
) -> None:
    """Its text must stay the JSON, so the pages come back beside it; a model that does not
    reason is not asked for encrypted reasoning (the real API refuses that)."""
    fake.script(fake.searched({"headline": "EUR 1,180"}, pages=(("Prices", PAGE),)))
    router = router_on(fake, store, "gpt-4.1")
    task_id = await funded_task(store)

    with web_search_allowed():
        result = await router.call(
            tier="utility", messages=MESSAGES, task_id=task_id, output_schema=SCHEMA
        )
    await router.aclose()

    assert "include" not in fake.requests[0].body
    assert result.data == {"headline": "EUR 1,180"}
    assert result.sources == (f"[Prices]({PAGE})",)


ARTICLE = {
    "title": "Kaltwerk prices",
    "standfirst": "What a unit costs.",
    "audience": "buyers",
    "sections": [{"heading": "2024", "body": "EUR 1,180 per unit."}],
    "sources": ["Kaltwerk annual report"],
}


async def test_a_module_keeps_the_pages_its_searched_answer_cites(
    fake: OpenAIFake, router: Router, store: SQLiteStore, tmp_path: Path
) -> None:
    """A module whose output type lists sources gets the pages its structured answer cited, after
    the ones it listed itself, across a tool loop on a reasoning model."""
    fake.script(
        fake.searched(searches=1, calls=(("call_1", "price_of", {"product": "widget"}),)),
        fake.searched(ARTICLE, pages=(("Prices", PAGE), ("Prices", PAGE))),
    )
    task_id = await funded_task(store)
    module = ModuleSpec(
        id="article", brief="Write it up.", output_type="article_draft", tools=["web_search"]
    )
    spec = TaskSpec(
        task_id=task_id, request="r", persona="p", plan=Plan(modules=[module]), budget_nano=10**9
    )
    bus = SQLiteLogBus(tmp_path / "bus.db")
    await bus.open()
    try:
        tools = ModuleTools({"price_of": PriceTool()}, web_search=True)
        result = await run_subagent(
            router, spec=spec, module=module, upstream={}, loop=LoopSetup(tools, 3, bus)
        )
    finally:
        await bus.close()

    assert len(fake.requests) == 2
    assert result.artifact.content == {
        **ARTICLE,
        "sources": ["Kaltwerk annual report", f"[Prices]({PAGE})"],
    }


def test_reasoning_without_its_encrypted_content_is_not_carried(fake: OpenAIFake) -> None:
    """A reasoning item that came back without its encrypted content (a reasoning model not
    known as one, so not asked for it) cannot go back: stored nowhere, the API answers 404 for
    it. The call goes back alone, which the API accepts."""
    from openai.types.responses import Response

    body = {"model": "gpt-5-mini", "input": [], "max_output_tokens": 64, "store": False}
    asked = Recorded("POST", "/v1/responses", "", {}, body, b"")
    reply = fake.response_body(
        asked, text=None, data=None, calls=[("call_1", "price_of", {"product": "widget"})]
    )
    assert reply["output"][0]["type"] == "reasoning"
    assert reply["output"][0]["encrypted_content"] is None
    request = ProviderRequest("gpt-5-mini", MESSAGES, 64, "utility", web_search=True)

    [call] = response_of(Response.model_validate(reply), request).tool_calls

    assert (call.id, call.signature) == ("call_1", "")
