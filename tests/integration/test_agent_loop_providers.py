"""The agent loop on each provider's native tool protocol (real SDK, loopback fake, real router
and ledger): malformed arguments get one repair, and reaching ``max_turns`` asks for the output
with what the model has."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.agent_loop import EXHAUSTED_PROMPT, AgentLoop
from agentfirm.build_master.journal import Journal
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import TIERS
from agentfirm.domain.tools import ToolSpec
from agentfirm.router.base import Message, Provider
from agentfirm.router.chains import parse_entry
from agentfirm.router.pricing import Pricer
from agentfirm.router.router import Router
from agentfirm.settings import PriceOverride
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.tools.catalog import ModuleTools
from tests.fakes.http_fake import running
from tests.fakes.provider_fake import ProviderFake
from tests.fakes.routing import funded_task, router_for
from tests.integration.test_provider_tools import SUBJECTS, Subject

pytestmark = pytest.mark.integration

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}},
    "required": ["headline"],
}
ANSWER = {"headline": "Widgets cost 42 euros"}
MESSAGES = [
    Message("system", "You are a market analyst."),
    Message("user", "What do widgets cost? Look it up."),
]


PRICE_SPEC = ToolSpec(
    "price_of",
    "The list price of a product.",
    {"type": "object", "properties": {"product": {"type": "string"}}, "required": ["product"]},
)


@dataclass
class PriceTool:
    """A tool that records what it was asked."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    spec: ToolSpec = PRICE_SPEC

    async def call(self, arguments: dict[str, Any]) -> str:
        self.calls.append(arguments)
        return f"{arguments['product']}: 42 euros"


@pytest.fixture(params=SUBJECTS, ids=[s.name for s in SUBJECTS], name="subject")
def _subject(request: pytest.FixtureRequest) -> Subject:
    subject: Subject = request.param
    return subject


@pytest.fixture(name="fake")
def _fake(subject: Subject) -> Any:
    with running(subject.fake()) as server:
        yield server


@pytest.fixture(name="router")
async def _router(
    subject: Subject, fake: ProviderFake, store: SQLiteStore
) -> AsyncIterator[Router]:
    provider: Provider = subject.open(fake)
    routed = router_for(store, {subject.name: provider}, [f"{subject.name}:{subject.model}"])
    if subject.name == "openai_compat":
        # A local model has no list price: the user's config gives one.
        entry = parse_entry(f"openai_compat:{subject.model}")
        price = PriceOverride(input_per_mtok=Decimal(1), output_per_mtok=Decimal(1))
        routed = Router(
            chains={tier: [entry] for tier in TIERS},
            providers={subject.name: provider},
            pricer=Pricer({subject.model: price}),
            store=store,
        )
    yield routed
    await routed.aclose()


@pytest.fixture(name="bus")
async def _bus(tmp_path: Path) -> AsyncIterator[SQLiteLogBus]:
    opened = SQLiteLogBus(tmp_path / "bus.db")
    await opened.open()
    yield opened
    await opened.close()


async def _loop(
    router: Router, bus: SQLiteLogBus, task_id: str, tool: PriceTool, max_turns: int
) -> AgentLoop:
    journal = await Journal.open(bus, task_id, "pricing", MESSAGES)
    return AgentLoop(
        call=lambda **kw: router.call(task_id=task_id, module_id="pricing", **kw),
        tier="execution",
        output_schema=SCHEMA,
        max_tokens=512,
        tools=ModuleTools({"price_of": tool}),
        max_turns=max_turns,
        journal=journal,
    )


def _tool_contents(body: Any) -> str:
    return json.dumps(body)


async def test_malformed_arguments_get_one_repair(
    subject: Subject, fake: ProviderFake, router: Router, bus: SQLiteLogBus, store: SQLiteStore
) -> None:
    fake.script(
        fake.tool_calls(("c1", "price_of", '{"product": "wid')),
        fake.tool_calls(("c2", "price_of", {"product": "widget"})),
        fake.structured(ANSWER),
    )
    task_id = await funded_task(store)
    tool = PriceTool()
    outcome = await (await _loop(router, bus, task_id, tool, max_turns=4)).run(MESSAGES)

    assert outcome.data == ANSWER
    assert not outcome.exhausted
    assert tool.calls == [{"product": "widget"}]  # the bad call never reached the tool
    second = _tool_contents(fake.requests[1].body)
    assert "Invalid call" in second  # the model was told what was wrong, in the protocol
    assert "widget: 42 euros" in _tool_contents(fake.requests[2].body)
    rows = await store.list_ledger(task_id)
    assert [r.outcome for r in rows] == ["ok", "ok", "ok"]


async def test_reaching_max_turns_asks_for_the_output_without_tools(
    subject: Subject, fake: ProviderFake, router: Router, bus: SQLiteLogBus, store: SQLiteStore
) -> None:
    fake.script(
        fake.tool_calls(("c1", "price_of", {"product": "a"})),
        fake.tool_calls(("c2", "price_of", {"product": "b"})),
        fake.structured(ANSWER),
    )
    task_id = await funded_task(store)
    tool = PriceTool()
    outcome = await (await _loop(router, bus, task_id, tool, max_turns=2)).run(MESSAGES)

    assert outcome.exhausted
    assert outcome.turns == 3
    assert outcome.data == ANSWER
    assert [c["product"] for c in tool.calls] == ["a", "b"]
    last = fake.requests[2].body
    assert EXHAUSTED_PROMPT in json.dumps(last)
    # The last turn offers no tool of ours: only the answer can come back.
    assert "price_of" not in json.dumps(last.get("tools", []))
    assert "price_of" not in json.dumps(last.get("config", {}).get("tools", []))
    assert len(await store.list_ledger(task_id)) == 3


SEARCHING = {"openai": "gpt-5-mini", "gemini": "gemini-3-flash-preview"}
"""Models that search beside their tools and want something carried back between turns: an
OpenAI reasoning model its reasoning items, Gemini 3 its server-side search parts."""


@pytest.mark.parametrize("name", list(SEARCHING))
async def test_a_searching_loop_carries_what_its_provider_needs_through_repair_and_max_turns(
    name: str, bus: SQLiteLogBus, store: SQLiteStore
) -> None:
    """A search with a malformed call, its repair, then ``max_turns``: each later request
    carries back what the provider requires with the calls (its fake refuses it otherwise)."""
    subject = dataclasses.replace(
        next(s for s in SUBJECTS if s.name == name), model=SEARCHING[name]
    )
    with running(subject.fake()) as fake:
        bad = ("c1", "price_of", '{"product": "wid')
        if name == "openai":
            first = fake.searched(searches=1, calls=(bad,))
        else:
            first = fake.searched_call(
                bad, query="widget price", uri="https://w.example", title="W"
            )
        fake.script(
            first,
            fake.tool_calls(("c2", "price_of", {"product": "widget"})),
            fake.structured(ANSWER),
        )
        router = router_for(store, {name: subject.open(fake)}, [f"{name}:{subject.model}"])
        task_id = await funded_task(store)
        tool = PriceTool()
        journal = await Journal.open(bus, task_id, "pricing", MESSAGES)
        loop = AgentLoop(
            call=lambda **kw: router.call(task_id=task_id, module_id="pricing", **kw),
            tier="execution",
            output_schema=SCHEMA,
            max_tokens=512,
            tools=ModuleTools({"price_of": tool}, web_search=True),
            max_turns=2,
            journal=journal,
        )
        try:
            outcome = await loop.run(MESSAGES)
        finally:
            await router.aclose()

    assert outcome.data == ANSWER
    assert outcome.exhausted
    assert tool.calls == [{"product": "widget"}]
    assert outcome.call.usage.web_searches == 1
    assert len(await store.list_ledger(task_id)) == 3
