"""Research escalation: a sub-agent that needs facts asks, the research agent searches the task's
attached documents, and the sub-agent runs again with the notes."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.attachments import Attachments, read_documents
from agentfirm.build_master.master import BuildMaster
from agentfirm.build_master.research import FIELD, research_id
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Event, ModuleSpec, Plan, Task, TaskSpec
from agentfirm.money import usd_to_nano
from agentfirm.router import build_router
from agentfirm.router.base import CallResult, Message
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.scripted_router import RecordedCall, ScriptedRouter

TASK = "t_research"
QUOTES = """# Supplier quotes, Q3 2024

Heat pump units for the Lyon depot were quoted by three vendors in September.

Kaltwerk GmbH quoted EUR 1,240 per unit for 2024 deliveries, freight included, valid until
30 November.

Nordvent AB declined to quote: its order book is full until 2026.
"""
NOT_A_FACT_IN_THE_SCRIPT = "EUR 1,240 per unit"
QUESTION = "What unit price did Kaltwerk quote for 2024 deliveries?"
# How the notes show an excerpt: - [file.md#N] "text"
EXCERPT = re.compile(r'^- \[(?P<label>[^\]]+)\] "(?P<text>[^"]*)"$', re.MULTILINE)


def pricing_module() -> ModuleSpec:
    return ModuleSpec(id="pricing", title="Unit pricing", brief="Establish the unit price.")


def make_spec(*modules: ModuleSpec) -> TaskSpec:
    return TaskSpec(
        task_id=TASK,
        request="Should we replace the Lyon depot's heating with heat pumps?",
        persona="market_research",
        plan=Plan(modules=list(modules or [pricing_module()])),
        budget_nano=usd_to_nano(5),
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    await store.create_task(Task(id=TASK, request="heat pumps"), actor="test")
    await store.set_budget(TASK, usd_to_nano(5))
    yield store
    await store.close()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SQLiteLogBus]:
    bus = SQLiteLogBus(tmp_path / "bus.db")
    await bus.open()
    yield bus
    await bus.close()


@pytest.fixture
async def attachments(tmp_path: Path) -> Attachments:
    doc = tmp_path / "client" / "supplier-quotes.md"
    doc.parent.mkdir()
    doc.write_text(QUOTES, encoding="utf-8")
    library = Attachments(tmp_path / "attachments")
    await library.add(TASK, read_documents([doc]))
    return library


def asks(*questions: str) -> dict[str, Any]:
    return {"summary": "", "findings": [], "open_questions": [], FIELD: list(questions)}


def cites_its_notes(call: RecordedCall) -> dict[str, Any]:
    """A model that cites what its research notes quote, and nothing else."""
    excerpts = [m.groupdict() for m in EXCERPT.finditer(call.prompt)]
    return {
        "summary": "Priced from the client's own quotes.",
        "findings": [
            {"claim": "Quoted unit price", "evidence": e["text"], "source": e["label"]}
            for e in excerpts
        ],
        "open_questions": [],
        FIELD: [],
    }


async def events(bus: SQLiteLogBus, type_: str) -> list[Event]:
    return [e for e in await bus.replay(TASK) if e.type == type_]


async def test_a_sub_agent_that_needs_research_cites_the_attached_document(
    store: SQLiteStore, bus: SQLiteLogBus, attachments: Attachments
) -> None:
    router = ScriptedRouter(
        {
            "pricing": [asks(QUESTION), cites_its_notes],
            research_id("pricing"): ["The quote is in the excerpt above."],
        }
    )
    build = BuildMaster(store=store, bus=bus, router=router, attachments=attachments)

    await build.execute(make_spec())

    artifact = (await store.latest_artifacts(TASK))["pricing"]
    findings = artifact.content["findings"]
    assert findings, "the re-run got no excerpt to cite"
    assert any(NOT_A_FACT_IN_THE_SCRIPT in f["evidence"] for f in findings)
    assert all(f["source"].startswith("supplier-quotes.md#") for f in findings)
    assert FIELD not in artifact.content
    (research_call,) = [c for c in router.calls if c.module_id == research_id("pricing")]
    assert QUESTION in research_call.prompt
    assert NOT_A_FACT_IN_THE_SCRIPT in research_call.prompt
    assert research_call.output_schema is None  # free text: providers may search the web


async def test_research_is_on_the_bus_with_its_questions_and_sources(
    store: SQLiteStore, bus: SQLiteLogBus, attachments: Attachments
) -> None:
    router = ScriptedRouter(
        {"pricing": [asks(QUESTION), cites_its_notes], research_id("pricing"): ["See excerpt."]}
    )
    await BuildMaster(store=store, bus=bus, router=router, attachments=attachments).execute(
        make_spec()
    )
    (started,) = await events(bus, "research.started")
    (finished,) = await events(bus, "research.finished")
    assert (started.module_id, started.payload["questions"]) == ("pricing", [QUESTION])
    assert finished.payload["sources"]
    assert all(s.startswith("supplier-quotes.md#") for s in finished.payload["sources"])
    (completed,) = await events(bus, "module.completed")
    assert completed.payload["research_rounds"] == 1


async def test_escalations_per_module_are_bounded(
    store: SQLiteStore, bus: SQLiteLogBus, attachments: Attachments
) -> None:
    router = ScriptedRouter(
        {
            "pricing": [asks(QUESTION), asks("And the freight?"), asks("Anything else?")],
            research_id("pricing"): ["First notes.", "Second notes."],
        }
    )
    build = BuildMaster(
        store=store, bus=bus, router=router, attachments=attachments, max_escalations=2
    )
    await build.execute(make_spec())

    module_calls = [c for c in router.calls if c.module_id == "pricing"]
    assert len(module_calls) == 3
    assert [FIELD in (c.output_schema or {})["properties"] for c in module_calls] == [
        True,
        True,
        False,  # the last run may not ask again: it must answer
    ]
    assert "First notes." in module_calls[2].prompt
    assert "Second notes." in module_calls[2].prompt
    (run,) = await store.list_module_runs(TASK)
    assert run.status == "done"


async def test_research_is_not_offered_when_there_is_nothing_to_search(
    store: SQLiteStore, bus: SQLiteLogBus, tmp_path: Path
) -> None:
    router = ScriptedRouter({"pricing": [cites_its_notes]})
    build = BuildMaster(
        store=store, bus=bus, router=router, attachments=Attachments(tmp_path / "none")
    )
    await build.execute(make_spec())
    (call,) = router.calls
    assert FIELD not in (call.output_schema or {})["properties"]
    assert "needs_research" not in call.prompt


class LedgerCounting:
    """The real offline router, keeping the module prompts it was sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.prompts: dict[str, list[str]] = {}

    async def call(self, *, messages: Sequence[Message], **kwargs: Any) -> CallResult:
        self.prompts.setdefault(str(kwargs.get("module_id")), []).append(messages[-1].content)
        result: CallResult = await self.inner.call(messages=messages, **kwargs)
        return result


async def test_offline_research_runs_on_the_ledger_at_the_research_tier(
    store: SQLiteStore, bus: SQLiteLogBus, attachments: Attachments, tmp_path: Path
) -> None:
    settings = load_settings({"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_OFFLINE": "1"})
    router = LedgerCounting(build_router(settings, store, available={"offline"}))
    build = BuildMaster(
        store=store, bus=bus, router=router, attachments=attachments, research_tier="utility"
    )
    # The offline provider fills every field, so its sub-agent always asks: once, the bound.
    spec = make_spec(
        ModuleSpec(
            id="pricing",
            title="Kaltwerk unit pricing",
            brief="What unit price did Kaltwerk quote for 2024 deliveries of heat pump units?",
        )
    )
    await build.execute(spec)

    rows = await store.list_ledger(TASK)
    research_rows = [r for r in rows if r.module_id == research_id("pricing")]
    assert [(r.tier, r.outcome, r.simulated) for r in research_rows] == [("utility", "ok", True)]
    assert len([r for r in rows if r.module_id == "pricing"]) == 2
    rerun_prompt = router.prompts["pricing"][1]
    assert "# Research notes" in rerun_prompt
    assert NOT_A_FACT_IN_THE_SCRIPT in rerun_prompt  # the excerpt itself reaches the sub-agent
    budget = await store.get_budget(TASK)
    assert budget.spent_nano == sum(r.cost_nano for r in rows)
    assert budget.reserved_nano == 0
