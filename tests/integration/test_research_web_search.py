"""The research agent's web search: the provider's native tool, sent by the real SDKs to loopback
fakes of the Anthropic and Gemini APIs, with the cited pages kept in the notes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentfirm.build_master.research import ResearchAgent, research_id
from agentfirm.domain.models import ModuleSpec, Plan, TaskSpec
from agentfirm.router.base import Message, ProviderRequest, web_search_allowed
from agentfirm.router.providers.anthropic import AnthropicProvider
from agentfirm.router.providers.gemini import GeminiProvider
from agentfirm.router.router import Router
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.http_fake import running
from tests.fakes.routing import funded_task, router_for

pytestmark = pytest.mark.integration

QUESTION = "What does Kaltwerk list as the 2024 unit price?"
PAGE = "https://kaltwerk.example/preisliste-2024"
TITLE = "Kaltwerk price list 2024"
ANSWER = "Kaltwerk lists EUR 1,180 per unit for 2024."
MODULE = ModuleSpec(id="pricing", title="Unit pricing", brief="Establish the unit price.")


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[AnthropicFake]:
    with running(AnthropicFake()) as server:
        yield server


@pytest.fixture(scope="module")
def gemini_fake() -> Iterator[GeminiFake]:
    with running(GeminiFake()) as server:
        yield server


def spec_for(task_id: str) -> TaskSpec:
    return TaskSpec(
        task_id=task_id,
        request="Heat pumps for the Lyon depot",
        persona="market_research",
        plan=Plan(modules=[MODULE]),
        budget_nano=10**9,
    )


@pytest.fixture
async def anthropic_router(
    anthropic_fake: AnthropicFake, store: SQLiteStore
) -> AsyncIterator[Router]:
    anthropic_fake.reset()
    keys = {"ANTHROPIC_API_KEY": "sk-ant-api03-test-key-0001"}
    provider = AnthropicProvider(get_secret=keys.get, base_url=anthropic_fake.url)
    router = router_for(
        store, {"anthropic": provider}, ["anthropic:claude-sonnet-4-6"], timeout_s=5
    )
    yield router
    await router.aclose()


@pytest.fixture
async def gemini_router(gemini_fake: GeminiFake, store: SQLiteStore) -> AsyncIterator[Router]:
    gemini_fake.reset()
    keys = {"GEMINI_API_KEY": "AIzaSyTest-Key-000000000000001"}
    provider = GeminiProvider(get_secret=keys.get, base_url=gemini_fake.url)
    router = router_for(store, {"gemini": provider}, ["gemini:gemini-2.5-flash"], timeout_s=5)
    yield router
    await router.aclose()


async def test_anthropic_research_sends_the_web_search_tool_and_keeps_the_citation(
    anthropic_fake: AnthropicFake, anthropic_router: Router, store: SQLiteStore
) -> None:
    anthropic_fake.script(anthropic_fake.searched(ANSWER, url=PAGE, title=TITLE, query=QUESTION))
    task_id = await funded_task(store)
    agent = ResearchAgent(anthropic_router, attachments=None)

    assert await agent.available(task_id)  # no documents, but the provider can search
    notes, result = await agent.research(spec_for(task_id), MODULE, [QUESTION])

    (sent,) = anthropic_fake.requests
    body: dict[str, Any] = sent.body
    assert body["tools"] == [{"type": "web_search_20250305", "name": "web_search", "max_uses": 3}]
    assert "tool_choice" not in body
    assert QUESTION in body["messages"][-1]["content"]
    assert result is not None
    assert notes.web_search
    assert ANSWER in notes.answer
    assert f"[{TITLE}]({PAGE})" in notes.answer
    assert f"[{TITLE}]({PAGE})" in notes.markdown()
    (row,) = await store.list_ledger(task_id)
    assert (row.module_id, row.outcome, row.provider) == (research_id("pricing"), "ok", "anthropic")


async def test_anthropic_keeps_the_pages_cited_before_a_structured_answer(
    anthropic_fake: AnthropicFake, anthropic_router: Router, store: SQLiteStore
) -> None:
    """The answer is the forced output tool's input, which carries no citation: the pages the
    text before it cited come back as the call's sources."""
    data = {"headline": "EUR 1,180"}
    anthropic_fake.script(anthropic_fake.searched(ANSWER, url=PAGE, title=TITLE, data=data))
    schema = {"type": "object", "properties": {"headline": {"type": "string"}}}
    task_id = await funded_task(store)

    with web_search_allowed():
        result = await anthropic_router.call(
            tier="utility",
            messages=[Message("user", QUESTION)],
            task_id=task_id,
            output_schema=schema,
        )

    assert result.data == data
    assert result.sources == (f"[{TITLE}]({PAGE})",)


async def test_gemini_research_grounds_with_google_search_and_keeps_the_source(
    gemini_fake: GeminiFake, gemini_router: Router, store: SQLiteStore
) -> None:
    gemini_fake.script(gemini_fake.grounded(ANSWER, uri=PAGE, title=TITLE, query=QUESTION))
    task_id = await funded_task(store)
    agent = ResearchAgent(gemini_router, attachments=None)

    notes, _result = await agent.research(spec_for(task_id), MODULE, [QUESTION])

    (sent,) = gemini_fake.requests
    body: dict[str, Any] = sent.body
    assert body["tools"] == [{"googleSearch": {}}]
    assert "responseMimeType" not in body.get("generationConfig", {})
    assert ANSWER in notes.answer
    assert f"[{TITLE}]({PAGE})" in notes.answer


async def test_a_structured_call_never_searches_even_when_search_is_allowed(
    anthropic_fake: AnthropicFake, gemini_fake: GeminiFake
) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    anthropic_fake.reset()
    gemini_fake.reset()
    anthropic_fake.script(anthropic_fake.structured({"a": "x"}))
    gemini_fake.script(gemini_fake.structured({"a": "x"}))
    anthropic = AnthropicProvider(
        get_secret={"ANTHROPIC_API_KEY": "sk-ant-api03-test-key-0001"}.get,
        base_url=anthropic_fake.url,
    )
    gemini = GeminiProvider(
        get_secret={"GEMINI_API_KEY": "AIzaSyTest-Key-000000000000001"}.get,
        base_url=gemini_fake.url,
    )
    try:
        for provider, model in ((anthropic, "claude-sonnet-4-6"), (gemini, "gemini-2.5-flash")):
            with web_search_allowed():
                request = ProviderRequest(
                    model=model,
                    messages=(Message("user", "fill it"),),
                    max_tokens=100,
                    tier="execution",
                    output_schema=schema,
                    timeout_s=5,
                )
            assert request.web_search
            await provider.complete(request)
    finally:
        await anthropic.aclose()
        await gemini.aclose()
    (to_anthropic,) = anthropic_fake.requests
    assert [t["name"] for t in to_anthropic.body["tools"]] == ["emit_output"]
    (to_gemini,) = gemini_fake.requests
    assert "tools" not in to_gemini.body
