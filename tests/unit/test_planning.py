"""Planning: the LLM adapts the template; invalid plans get one retry, then the template is used."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from agentfirm.domain.calls import PLAN_ID as PLAN_MODULE_ID
from agentfirm.domain.models import ModuleSpec
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.master.planning import (
    MAX_MODULES,
    adapt_plan,
    plan_problems,
    plan_schema,
    validate_modules,
)
from agentfirm.personas.library import ModuleTemplate, Persona, load_persona_file
from agentfirm.personas.model import module_waves
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.routing import funded_task, router_for
from tests.fakes.scripted_router import Reply, ScriptedRouter

ROOT = Path(__file__).resolve().parents[2]
TASK = "t-plan"


def _template_module(mid: str, *deps: str, tier: str = "execution") -> ModuleTemplate:
    return ModuleTemplate.model_validate(
        {
            "id": mid,
            "title": mid.title(),
            "brief": f"Do {mid}.",
            "tier": tier,
            "depends_on": list(deps),
            "output_type": "research_notes",
        }
    )


PERSONA = Persona(
    id="toy",
    name="Toy Research",
    description="Researches and concludes.",
    classification_keywords=["toy"],
    modules=[
        _template_module("research"),
        _template_module("context"),
        _template_module("conclusion", "research", "context", tier="reasoning"),
    ],
    quality_checklist=["Every finding cites a source"],
)


def _module(mid: str, *deps: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": mid,
        "title": mid.replace("_", " ").title(),
        "brief": f"Do {mid} for this request.",
        "tier": "execution",
        "depends_on": list(deps),
        "output_type": "research_notes",
        **fields,
    }


def _reply(*modules: dict[str, Any], rationale: str = "Fits the request.") -> dict[str, Any]:
    return {"rationale": rationale, "modules": list(modules)}


VALID = _reply(
    _module("research"),
    _module("regulation_scan"),
    _module("conclusion", "research", "regulation_scan", tier="reasoning"),
    rationale="Regulation matters here; the client context is given.",
)
CYCLIC = _reply(_module("research", "conclusion"), _module("conclusion", "research"))
UNKNOWN_TIER = _reply(_module("research", tier="turbo"), _module("conclusion", "research"))


async def _plan(*replies: Reply, answers: list[tuple[str, str]] | None = None) -> Any:
    router = ScriptedRouter({PLAN_MODULE_ID: replies})
    outcome = await adapt_plan(
        router,
        persona=PERSONA,
        request="Research toys in the EU",
        answers=answers or [],
        task_id=TASK,
    )
    return outcome, router


# ---------------------------------------------------------------------------- adapt_plan


async def test_a_valid_adapted_plan_is_used_with_its_waves() -> None:
    outcome, _router = await _plan(VALID)

    assert (outcome.source, outcome.attempts) == ("llm", 1)
    assert [m.id for m in outcome.plan.modules] == ["research", "regulation_scan", "conclusion"]
    assert outcome.plan.waves == [["research", "regulation_scan"], ["conclusion"]]


async def test_the_reason_names_added_and_dropped_modules_and_the_rationale() -> None:
    outcome, _router = await _plan(VALID)

    assert outcome.reason == (
        "adapted the toy template: added regulation_scan; dropped context — "
        "Regulation matters here; the client context is given."
    )


async def test_planning_is_one_reasoning_call_with_the_plan_schema_charged_to_the_task() -> None:
    _outcome, router = await _plan(VALID)

    [call] = router.calls
    assert (call.tier, call.task_id, call.module_id) == ("reasoning", TASK, PLAN_MODULE_ID)
    assert call.output_schema == plan_schema()


async def test_the_clarification_answers_reach_the_planner() -> None:
    _outcome, router = await _plan(VALID, answers=[("Which countries?", "Germany and France")])

    prompt = router.calls[0].messages[-1].content
    assert "Q: Which countries?\n  A: Germany and France" in prompt


async def test_a_cyclic_plan_twice_falls_back_to_the_template_with_a_logged_reason() -> None:
    with capture_logs() as logs:
        outcome, router = await _plan(CYCLIC, CYCLIC)

    assert (outcome.source, outcome.attempts) == ("template", 2)
    assert outcome.plan == PERSONA.to_plan()
    assert "invalid twice" in outcome.reason
    assert "dependency cycle" in outcome.reason
    [warning] = [e for e in logs if e["event"] == "plan.fallback_to_template"]
    assert (warning["log_level"], warning["reason"]) == ("warning", outcome.reason)
    assert len(router.calls) == 2


async def test_the_retry_shows_the_model_its_plan_and_the_problems() -> None:
    _outcome, router = await _plan(CYCLIC, CYCLIC)

    retry = router.calls[1].messages
    assert [m.role for m in retry[-2:]] == ["assistant", "user"]
    assert '"research"' in retry[-2].content
    assert "dependency cycle: research → conclusion → research" in retry[-1].content


async def test_an_unknown_tier_is_retried_and_the_corrected_plan_is_used() -> None:
    outcome, router = await _plan(UNKNOWN_TIER, VALID)

    assert (outcome.source, outcome.attempts) == ("llm", 2)
    assert 'unknown tier "turbo"' in router.calls[1].messages[-1].content
    assert "valid after one retry" in outcome.reason


async def test_a_failed_planning_call_falls_back_to_the_template() -> None:
    outcome, _router = await _plan(ProviderError("upstream 503"))

    assert (outcome.source, outcome.attempts) == ("template", 1)
    assert outcome.plan == PERSONA.to_plan()
    assert "the planning call failed (upstream 503)" in outcome.reason


async def test_a_budget_refusal_on_the_retry_falls_back_to_the_template() -> None:
    refusal = BudgetExceeded(
        task_id=TASK,
        needed_usd=Decimal("0.05"),
        spent_usd=Decimal("0.01"),
        ceiling_usd=Decimal("0.02"),
    )

    outcome, _router = await _plan(CYCLIC, refusal)

    assert (outcome.source, outcome.attempts) == ("template", 2)
    assert "budget exhausted" in outcome.reason


# ---------------------------------------------------------------------------- validation


def _specs(*modules: dict[str, Any]) -> list[ModuleSpec]:
    return [ModuleSpec.model_validate(m) for m in modules]


def test_a_plan_without_modules_is_invalid() -> None:
    assert plan_problems({"rationale": "", "modules": []})[1] == [
        "the plan has no modules — return at least one module"
    ]


def test_a_module_missing_fields_is_reported_by_id() -> None:
    entry = {"id": "research", "title": "Research", "tier": "execution"}

    _modules, problems = plan_problems(_reply(entry))

    assert problems == [
        "module 'research' has no brief, depends_on, output_type — give every field"
    ]


def test_an_id_that_is_not_safe_is_invalid() -> None:
    _modules, problems = plan_problems(_reply(_module("Prior Art/Search")))

    assert problems[0].startswith(
        "module 'Prior Art/Search': id \"Prior Art/Search\" is not a valid id"
    )


def test_an_empty_brief_is_invalid() -> None:
    _modules, problems = plan_problems(_reply(_module("research", brief=" ")))

    assert problems == ["module 'research': 'brief' is empty — write it"]


def test_unknown_dependencies_and_output_types_are_invalid() -> None:
    problems = validate_modules(_specs(_module("a", "ghost", output_type="poem")))

    assert any("depends on unknown module 'ghost'" in p for p in problems)
    assert any("unknown output type 'poem'" in p for p in problems)


def test_duplicate_ids_are_invalid() -> None:
    problems = validate_modules(_specs(_module("a"), _module("a")))

    assert any("module id 'a' is used twice" in p for p in problems)


def test_a_module_that_feeds_nothing_before_the_final_wave_is_invalid() -> None:
    modules = _specs(_module("a"), _module("side", "a"), _module("b", "a"), _module("end", "b"))

    assert validate_modules(modules) == [
        "module 'side' feeds nothing: no module depends on it and it is not part of the final "
        "output — make a later module depend on it, or drop it"
    ]


def test_an_unwired_added_module_is_invalid() -> None:
    modules = _specs(_module("a"), _module("extra"), _module("end", "a"))

    assert [p.split(":")[0] for p in validate_modules(modules)] == ["module 'extra' feeds nothing"]


def test_several_outputs_in_the_final_wave_are_valid() -> None:
    modules = _specs(_module("a"), _module("report", "a"), _module("slides", "a"))

    assert validate_modules(modules) == []


def test_a_single_module_plan_is_valid() -> None:
    assert validate_modules(_specs(_module("only"))) == []


def test_more_than_the_maximum_modules_is_invalid() -> None:
    first = _module("m0")
    chain = [first] + [_module(f"m{i}", f"m{i - 1}") for i in range(1, MAX_MODULES + 1)]

    assert validate_modules(_specs(*chain)) == [
        f"the plan has {MAX_MODULES + 1} modules — merge related work into at most {MAX_MODULES}"
    ]


@pytest.mark.parametrize("path", sorted((ROOT / "personas").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_template_is_a_valid_plan(path: Path) -> None:
    assert validate_modules(load_persona_file(path).to_plan().modules) == []


def test_the_plan_schema_is_strict_mode_friendly() -> None:
    def objects(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            own = [node] if node.get("type") == "object" else []
            return own + [o for value in node.values() for o in objects(value)]
        if isinstance(node, list):
            return [o for value in node for o in objects(value)]
        return []

    for obj in objects(plan_schema()):
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])


async def test_with_the_real_router_and_offline_provider_the_outcome_is_a_valid_plan(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "agentfirm.sqlite")
    await store.open()
    try:
        router = router_for(store, {"offline": OfflineProvider()}, ["offline:claude-sonnet-4-5"])
        task_id = await funded_task(store)
        persona = load_persona_file(ROOT / "personas" / "market_research.yaml")

        outcome = await adapt_plan(
            router, persona=persona, request="Size e-bikes", answers=[], task_id=task_id
        )

        assert validate_modules(outcome.plan.modules) == []
        assert outcome.plan.waves == module_waves(outcome.plan.modules)
        plan_calls = [e for e in await store.list_ledger(task_id) if e.module_id == PLAN_MODULE_ID]
        assert len(plan_calls) == outcome.attempts
    finally:
        await store.close()
