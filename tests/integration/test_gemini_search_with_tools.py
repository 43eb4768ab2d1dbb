"""Gemini cannot ground on Google Search in a request that offers function tools, so a module
allowed ``web_search`` used to lose search as soon as it had any tool. Its agent loop now offers
``web_search`` as a function answered by a grounded call of its own: through the router (the
search fee reserved and booked), the cited page in the result, the cost in the module's total.
Real SDK against the loopback Gemini fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.subagent import LoopSetup, run_subagent
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleSpec, Plan, TaskSpec
from agentfirm.money import usd_to_nano
from agentfirm.router.base import searches_beside_tools
from agentfirm.router.providers.gemini import GeminiProvider
from agentfirm.router.router import Router
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.tools.catalog import ModuleTools
from tests.fakes.gemini_fake import GeminiFake, searches, server_part
from tests.fakes.http_fake import Recorded, Reply, running
from tests.fakes.routing import funded_task, router_for
from tests.integration.test_agent_loop_providers import PriceTool

pytestmark = pytest.mark.integration

MODEL = "gemini-2.5-flash"
GEMINI_3 = "gemini-3-flash-preview"
PAGE = "https://kaltwerk.example/prices-2024"
GROUNDING_FEE_USD = Decimal(35) / 1000  # Gemini 2.x: $35 per 1,000 grounded prompts
NOTES = {"summary": "s", "findings": [{"claim": "c", "evidence": "e", "source": PAGE}]}
NOTES["open_questions"] = []


@pytest.fixture
def fake() -> Iterator[GeminiFake]:
    with running(GeminiFake()) as server:
        yield server


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
async def router(fake: GeminiFake, store: SQLiteStore) -> AsyncIterator[Router]:
    keys = {"GEMINI_API_KEY": "AIzaSyTest-Key-000000000000001"}
    provider = GeminiProvider(get_secret=keys.get, base_url=fake.url)
    routed = router_for(store, {"gemini": provider}, [f"gemini:{MODEL}"], timeout_s=5)
    yield routed
    await routed.aclose()


def test_gemini_does_not_search_beside_tools_before_gemini_3_but_the_others_do() -> None:
    assert not searches_beside_tools("gemini", MODEL)
    assert searches_beside_tools("gemini", GEMINI_3)
    assert searches_beside_tools("anthropic", "claude-sonnet-4-6")
    assert searches_beside_tools("openai", "gpt-5-mini")
    assert not searches_beside_tools("openai_compat", "qwen3")


async def test_a_gemini_module_with_tools_searches_through_a_grounded_call(
    fake: GeminiFake, router: Router, store: SQLiteStore, tmp_path: Path
) -> None:
    grounded = fake.grounded("EUR 1,180 per unit.", uri=PAGE, title="Prices")

    def answer(request: Recorded) -> Reply:
        body: dict[str, Any] = request.body
        if searches(request):  # the grounded call: no functions, the search tool
            assert "functionDeclarations" not in str(body["tools"])
            return grounded(request)
        answered = any("functionResponse" in str(c) for c in body["contents"])
        if not answered:
            return fake.tool_calls(("s1", "web_search", {"query": "KW-9"}))(request)
        return fake.structured(NOTES)(request)

    fake.respond_with(answer)
    task_id = await funded_task(store)
    module = ModuleSpec(id="prices", brief="Find the KW-9 price.", tools=["web_search"])
    spec = TaskSpec(
        task_id=task_id, request="r", persona="p", plan=Plan(modules=[module]), budget_nano=10**9
    )
    bus = SQLiteLogBus(tmp_path / "bus.db")
    await bus.open()
    tools = ModuleTools({"price_of": PriceTool()}, web_search=True)

    result = await run_subagent(
        router, spec=spec, module=module, upstream={}, loop=LoopSetup(tools, 3, bus)
    )
    await bus.close()

    first, search, last = fake.requests
    declared = [d["name"] for t in first.body["tools"] for d in t.get("functionDeclarations", [])]
    assert "web_search" in declared
    assert "googleSearch" not in str(first.body["tools"])
    assert "KW-9" in str(search.body["contents"])
    assert "EUR 1,180 per unit." in str(last.body["contents"])
    assert PAGE in str(last.body["contents"])
    assert result.artifact.content == NOTES
    rows = await store.list_ledger(task_id)
    assert len(rows) == 3
    assert result.call.usage.web_searches == 1
    assert result.call.cost_nano == sum(r.cost_nano for r in rows)
    search_row = rows[1]
    assert search_row.cost_nano > usd_to_nano(GROUNDING_FEE_USD)


async def test_a_gemini_3_module_searches_beside_its_functions_in_one_request(
    fake: GeminiFake, store: SQLiteStore, tmp_path: Path
) -> None:
    """Gemini 3 gets ``google_search`` with its functions (server-side tool invocations on), no
    grounded call of its own; its search comes back as server-side parts that the next turn
    hands back, unchanged, before the function call (the fake refuses the turn otherwise). One
    search billed, two ledger rows, the page cited kept as a source."""
    fake.script(
        fake.searched_call(
            ("c1", "price_of", {"product": "KW-9"}), query="KW-9 price", uri=PAGE, title="Prices"
        ),
        fake.structured(NOTES),
    )
    keys = {"GEMINI_API_KEY": "AIzaSyTest-Key-000000000000001"}
    provider = GeminiProvider(get_secret=keys.get, base_url=fake.url)
    router = router_for(store, {"gemini": provider}, [f"gemini:{GEMINI_3}"], timeout_s=5)
    task_id = await funded_task(store)
    module = ModuleSpec(id="prices", brief="Find the KW-9 price.", tools=["web_search"])
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
        await router.aclose()

    first, second = fake.requests
    for sent in (first, second):
        declared = [
            d["name"] for t in sent.body["tools"] for d in t.get("functionDeclarations", [])
        ]
        assert "price_of" in declared
        assert "web_search" not in declared
        assert any("googleSearch" in t for t in sent.body["tools"])
        assert sent.body["toolConfig"]["includeServerSideToolInvocations"] is True
    model_turn = next(c for c in second.body["contents"] if c["role"] == "model")
    kinds = [next(k for k in p if k != "thoughtSignature") for p in model_turn["parts"]]
    assert kinds == ["toolCall", "toolResponse", "functionCall"]
    handed_back = [p for p in model_turn["parts"] if "functionCall" not in p]
    assert [server_part(p) for p in handed_back] == fake.server_parts["c1"]
    assert result.artifact.content == NOTES
    assert result.call.usage.web_searches == 1
    assert len(await store.list_ledger(task_id)) == 2
    assert f"[Prices]({PAGE})" in result.call.sources
