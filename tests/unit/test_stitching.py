"""Hierarchical stitching: past a share of the stitch model's context window, module outputs are
stitched in groups and the group results stitched again; no stitch call passes the bound and the
deliverable still holds every module's section. The quality judgement stays within the same bound.
A whole 2000-module task: ``tests/integration/test_stitching_task.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from agentfirm.build_master.assembly import (
    MODULE_ENUM_LIMIT,
    deliverable_markdown,
    judge_messages,
    judge_schema,
    match_verdicts,
)
from agentfirm.build_master.master import BuildMaster
from agentfirm.build_master.stitching import DEFAULT_CONTEXT_TOKENS, STITCH_SHARE, stitch_bound
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Artifact, ModuleSpec, Plan, Task, TaskSpec
from agentfirm.router.base import ChainEntry, ProviderRequest, ProviderResponse
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.router.tokens import estimate_messages
from agentfirm.settings import PriceOverride
from agentfirm.store.sqlite import SQLiteStore

TASK = "t_stitch"
MODULES = 2000
BOUND = 20_000
SIMULATED = ChainEntry("offline", "claude-sonnet-4-6", price_as="anthropic")


class Recording:
    """The offline provider, remembering each request's estimated input tokens."""

    name = "offline"
    simulated = True

    def __init__(self) -> None:
        self.inputs: list[int] = []
        self._offline = OfflineProvider()

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.inputs.append(estimate_messages(request.messages))
        return await self._offline.complete(request)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "store.db")
    await store.open()
    await store.create_task(Task(id=TASK, request="A market study"), actor="test")
    await store.set_budget(TASK, 10**15)
    yield store
    await store.close()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SQLiteLogBus]:
    async with _opened(SQLiteLogBus(tmp_path / "bus.db")) as bus:
        yield bus


@asynccontextmanager
async def _opened(bus: SQLiteLogBus) -> AsyncIterator[SQLiteLogBus]:
    await bus.open()
    try:
        yield bus
    finally:
        await bus.close()


def router(store: SQLiteStore, provider: Recording) -> Router:
    return Router(
        chains={t: [SIMULATED] for t in ("reasoning", "execution", "utility")},
        providers={"offline": provider},
        pricer=Pricer(),
        store=store,
    )


def spec_of(count: int) -> TaskSpec:
    modules = [ModuleSpec(id=f"m{n}", title=f"Part {n}") for n in range(count)]
    return TaskSpec(
        task_id=TASK,
        request="Size the market for electric cargo bikes in Europe",
        persona="market_analyst",
        plan=Plan(modules=modules),
        budget_nano=10**15,
    )


async def test_a_2000_module_stitch_stays_under_the_bound_and_keeps_every_section(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    spec = spec_of(MODULES)
    for module in spec.plan.modules:
        content = {
            "title": f"Findings of {module.id}",
            "summary": f"What {module.id} found about cargo bikes in its market. " * 6,
            "findings": [{"claim": "Demand grows.", "evidence": "Sales data.", "source": "x"}],
            "open_questions": [],
        }
        await store.save_artifact(
            Artifact(
                task_id=TASK, module_id=module.id, output_type="research_notes", content=content
            )
        )
    provider = Recording()
    build = BuildMaster(store=store, bus=bus, router=router(store, provider), stitch_tokens=BOUND)

    artifact, markdown = await build.stitch(spec)

    assert len(provider.inputs) > 2  # groups, then their results
    assert max(provider.inputs) <= BOUND
    assert sum(provider.inputs) > 10 * BOUND  # one call could not have held them
    assert artifact.module_id == "_deliverable"
    for module in spec.plan.modules:
        assert f"### {module.title} (`{module.id}`)" in markdown


async def test_outputs_that_fit_are_stitched_in_one_call(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    spec = spec_of(3)
    for module in spec.plan.modules:
        await store.save_artifact(
            Artifact(
                task_id=TASK,
                module_id=module.id,
                output_type="research_notes",
                content={"title": module.id, "summary": "Short.", "findings": []},
            )
        )
    provider = Recording()
    build = BuildMaster(store=store, bus=bus, router=router(store, provider), stitch_tokens=BOUND)

    await build.stitch(spec)

    assert len(provider.inputs) == 1


def test_the_bound_is_a_share_of_the_reasoning_models_context_window(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    window = Pricer().context_window(SIMULATED)
    assert window is not None

    build = BuildMaster(store=store, bus=bus, router=router(store, Recording()))

    assert build.stitch_tokens == int(window * STITCH_SHARE)
    assert stitch_bound(None) == int(DEFAULT_CONTEXT_TOKENS * STITCH_SHARE)


def test_a_deliverable_too_long_for_the_bound_is_judged_cut_at_a_section_heading() -> None:
    spec = spec_of(400).model_copy(update={"quality_checklist": ["Every part is covered"]})
    outputs = {
        m.id: Artifact(
            task_id=TASK,
            module_id=m.id,
            output_type="research_notes",
            content={"title": m.id, "summary": f"What {m.id} found. " * 40, "findings": []},
        )
        for m in spec.plan.modules
    }
    body = {"title": "Cargo bikes", "executive_summary": "Demand grows.", "sections": []}
    markdown = deliverable_markdown(spec, body, outputs, simulated=False)
    assert estimate_messages(judge_messages(spec, markdown)) > BOUND

    system, user = judge_messages(spec, markdown, bound=BOUND)

    assert estimate_messages([system, user]) <= BOUND
    shown, _, note = user.content.partition("\n\n[Cut for length")
    assert markdown.startswith(shown.partition("# Deliverable\n\n")[2])  # the body comes first
    assert "Cargo bikes" in shown
    assert markdown[len(shown.partition("# Deliverable\n\n")[2]) :].startswith("\n### ")
    left = markdown.count("\n### ") - shown.count("\n### ")
    assert f"{left} more section(s)" in note
    assert judge_messages(spec, markdown, bound=10**9) == judge_messages(spec, markdown)


def enum_values(schema: object) -> int:
    """How many enum values ``schema`` lists, in all (OpenAI's strict mode takes 1,000)."""
    if isinstance(schema, dict):
        own = len(schema.get("enum") or ())
        return own + sum(enum_values(v) for k, v in schema.items() if k != "enum")
    if isinstance(schema, list):
        return sum(enum_values(v) for v in schema)
    return 0


def test_the_judgement_schema_of_2000_modules_stays_within_strict_modes_enum_limits() -> None:
    checklist = ["Every part is covered", "Sources are named"]
    ids = [f"m{n}" for n in range(MODULES)]

    few = judge_schema(checklist, ids[:MODULE_ENUM_LIMIT])
    many = judge_schema(checklist, ids)

    named = few["properties"]["items"]["items"]["properties"]["modules"]["items"]
    assert named["enum"] == ids[:MODULE_ENUM_LIMIT]
    named = many["properties"]["items"]["items"]["properties"]["modules"]["items"]
    assert named == {"type": "string"}
    assert enum_values(many) <= 1000
    assert match_verdicts(
        checklist, [{"item": checklist[0], "passed": False, "modules": ["m1999", "x"]}], ids
    )[0]["modules"] == ["m1999"]


def test_a_model_genai_prices_does_not_know_takes_its_window_from_its_price_override(
    store: SQLiteStore, bus: SQLiteLogBus
) -> None:
    local = ChainEntry("offline", "llama3.1:8b")  # as an openai_compat local model is named
    known = PriceOverride(input_per_mtok=Decimal(0), output_per_mtok=Decimal(0))
    sized = known.model_copy(update={"context_window": 32_768})

    def build_with(price: PriceOverride) -> BuildMaster:
        routed = Router(
            chains={t: [local] for t in ("reasoning", "execution", "utility")},
            providers={"offline": Recording()},
            pricer=Pricer({"llama3.1:8b": price}),
            store=store,
        )
        return BuildMaster(store=store, bus=bus, router=routed)

    assert build_with(sized).stitch_tokens == int(32_768 * STITCH_SHARE)
    assert build_with(known).stitch_tokens == stitch_bound(None)  # the assumed window
    with pytest.raises(ValidationError):
        PriceOverride(input_per_mtok=Decimal(0), output_per_mtok=Decimal(0), context_window=0)
