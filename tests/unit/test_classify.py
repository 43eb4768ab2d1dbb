"""Classification stages: keywords decide when clear; else a utility-tier LLM call, accepted only
when confident; else the user is asked."""

from __future__ import annotations

from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator
from structlog.testing import capture_logs

from agentfirm.domain.calls import CLASSIFY_ID as CLASSIFY_MODULE_ID
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.master.classify import (
    LLM_ACCEPT_CONFIDENCE,
    classification_schema,
    classify_request,
)
from agentfirm.personas.library import Classification, ModuleTemplate, Persona, PersonaLibrary
from tests.fakes.scripted_router import Reply, ScriptedRouter

TASK = "t-classify"
AMBIGUOUS = "Is the market for patent analytics tools worth entering?"


def _persona(pid: str, keywords: list[str]) -> Persona:
    module = ModuleTemplate(
        id="work", title="Work", brief="Do it.", tier="execution", output_type="research_notes"
    )
    return Persona(
        id=pid,
        name=pid.replace("_", " ").title(),
        description=f"Does {pid.replace('_', ' ')}.",
        classification_keywords=keywords,
        modules=[module],
        quality_checklist=["Done"],
    )


LIBRARY = PersonaLibrary(
    [_persona("patent_research", ["patent", "prior art"]), _persona("market_research", ["market"])]
)


async def _classify(request: str, *replies: Reply) -> tuple[Classification, ScriptedRouter]:
    router = ScriptedRouter({CLASSIFY_MODULE_ID: replies})
    result = await classify_request(LIBRARY, request, router=router, task_id=TASK)
    return result, router


async def test_a_clear_keyword_winner_needs_no_llm_call() -> None:
    result, router = await _classify("Search prior art for my patent")

    assert (result.persona, result.stage) == ("patent_research", "keywords")
    assert result.reason == "keywords patent, prior art (score 3)"
    assert router.calls == []


async def test_a_confident_llm_pick_decides_an_unclear_request() -> None:
    result, _router = await _classify(
        AMBIGUOUS, {"persona": "market_research", "confidence": 0.9, "reason": "Market entry."}
    )

    assert (result.persona, result.stage, result.confidence) == ("market_research", "llm", 0.9)
    assert result.reason == "LLM (0.90): Market entry."
    assert result.scores == {"market_research": 1.0, "patent_research": 1.0}


async def test_the_llm_call_is_utility_tier_with_an_enum_of_persona_ids_and_none() -> None:
    _result, router = await _classify(
        AMBIGUOUS, {"persona": "market_research", "confidence": 0.9, "reason": "x"}
    )

    [call] = router.calls
    assert (call.tier, call.task_id, call.module_id) == ("utility", TASK, CLASSIFY_MODULE_ID)
    assert call.output_schema == classification_schema(["market_research", "patent_research"])
    assert call.output_schema["properties"]["persona"]["enum"][-1] == "none"
    assert "Does patent research." in call.messages[-1].content


async def test_a_pick_below_the_threshold_asks_the_user() -> None:
    below = round(LLM_ACCEPT_CONFIDENCE - 0.1, 2)

    result, _router = await _classify(
        AMBIGUOUS, {"persona": "market_research", "confidence": below, "reason": "Maybe."}
    )

    assert (result.persona, result.stage, result.confidence) == (None, "ask", below)
    assert f"LLM unsure (market_research at {below:.2f}): Maybe." in result.reason


async def test_a_pick_at_the_threshold_is_accepted() -> None:
    result, _router = await _classify(
        AMBIGUOUS,
        {"persona": "market_research", "confidence": LLM_ACCEPT_CONFIDENCE, "reason": "ok"},
    )

    assert result.stage == "llm"


async def test_none_asks_the_user_however_confident() -> None:
    result, _router = await _classify(
        "Plan a team offsite", {"persona": "none", "confidence": 1.0, "reason": "Out of scope."}
    )

    assert (result.persona, result.stage) == (None, "ask")


async def test_an_unknown_persona_in_the_reply_asks_the_user() -> None:
    result, _router = await _classify(
        AMBIGUOUS, {"persona": "astrology", "confidence": 1.0, "reason": "Stars."}
    )

    assert (result.persona, result.stage) == (None, "ask")
    assert 'named unknown persona "astrology"' in result.reason


@pytest.mark.parametrize(
    "failure",
    [
        ProviderError("upstream 503"),
        BudgetExceeded(
            task_id=TASK,
            needed_usd=Decimal("0.01"),
            spent_usd=Decimal("0"),
            ceiling_usd=Decimal("0.001"),
        ),
    ],
    ids=["provider", "budget"],
)
async def test_a_failed_llm_call_asks_the_user_and_logs_a_warning(failure: Exception) -> None:
    with capture_logs() as logs:
        result, _router = await _classify(AMBIGUOUS, failure)

    assert (result.persona, result.stage) == (None, "ask")
    assert "the LLM stage failed" in result.reason
    assert [e["event"] for e in logs] == ["classify.llm_failed"]


async def test_without_a_router_an_unclear_request_goes_to_the_user() -> None:
    result = await classify_request(LIBRARY, AMBIGUOUS, router=None, task_id=None)

    assert (result.persona, result.stage) == (None, "ask")
    assert result.reason == "no clear keyword winner: market_research 1, patent_research 1"


def test_the_classification_schema_is_a_valid_closed_schema() -> None:
    schema = classification_schema(["a", "b"])

    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"])
