"""Clarification: questions only when the request is ambiguous, at most three; assumptions instead
of questions for non-interactive runs."""

from __future__ import annotations

from decimal import Decimal

from jsonschema import Draft202012Validator
from structlog.testing import capture_logs

from agentfirm.domain.calls import CLARIFY_ID as CLARIFY_MODULE_ID
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.master.clarify import (
    MAX_QUESTIONS,
    assumptions_for,
    assumptions_from_answers,
    clarification_schema,
    clarifying_questions,
)
from agentfirm.personas.library import ModuleTemplate, Persona
from tests.fakes.scripted_router import Reply, ScriptedRouter

TASK = "t-clarify"
PERSONA = Persona(
    id="market_research",
    name="Market Research",
    description="Sizes markets.",
    classification_keywords=["market"],
    modules=[
        ModuleTemplate(
            id="sizing",
            title="Market sizing",
            brief="Size it.",
            tier="reasoning",
            output_type="market_sizing",
        )
    ],
    quality_checklist=["Figures have sources"],
)


async def _ask(reply: Reply, request: str = "Size the market for e-bikes") -> list[str]:
    router = ScriptedRouter({CLARIFY_MODULE_ID: [reply]})
    return await clarifying_questions(router, persona=PERSONA, request=request, task_id=TASK)


async def test_a_clear_request_gets_no_questions() -> None:
    assert await _ask({"ambiguous": False, "questions": []}) == []


async def test_questions_are_ignored_when_the_model_says_the_request_is_clear() -> None:
    assert await _ask({"ambiguous": False, "questions": ["Which country?"]}) == []


async def test_an_ambiguous_request_gets_the_models_questions_in_order() -> None:
    questions = await _ask(
        {"ambiguous": True, "questions": ["Which country?", "Which year is the base?"]}
    )

    assert questions == ["Which country?", "Which year is the base?"]


async def test_at_most_three_questions_are_asked() -> None:
    many = [f"Question {n}?" for n in range(1, 6)]

    questions = await _ask({"ambiguous": True, "questions": many})

    assert questions == many[:MAX_QUESTIONS] == ["Question 1?", "Question 2?", "Question 3?"]


async def test_blank_and_repeated_questions_are_dropped() -> None:
    questions = await _ask(
        {"ambiguous": True, "questions": [" Which  country? ", "", "which country?", "B2B?"]}
    )

    assert questions == ["Which country?", "B2B?"]


async def test_the_call_uses_the_utility_tier_and_the_schema_and_shows_the_request() -> None:
    router = ScriptedRouter({CLARIFY_MODULE_ID: [{"ambiguous": False, "questions": []}]})

    await clarifying_questions(router, persona=PERSONA, request="Size e-bikes", task_id=TASK)

    [call] = router.calls
    assert (call.tier, call.task_id, call.output_schema) == (
        "utility",
        TASK,
        clarification_schema(),
    )
    assert "Size e-bikes" in call.messages[-1].content
    assert "Market sizing" in call.messages[-1].content


async def test_a_failed_call_gives_no_questions_and_a_warning() -> None:
    with capture_logs() as logs:
        questions = await _ask(ProviderError("upstream 503"))

    assert questions == []
    assert [(e["event"], e["log_level"]) for e in logs] == [("clarify.failed", "warning")]


async def test_a_budget_refusal_gives_no_questions() -> None:
    refusal = BudgetExceeded(
        task_id=TASK,
        needed_usd=Decimal("0.01"),
        spent_usd=Decimal("0"),
        ceiling_usd=Decimal("0.001"),
    )

    assert await _ask(refusal) == []


def test_each_unasked_question_becomes_a_recorded_assumption() -> None:
    assumptions = assumptions_for(["Which country?", "Which year?"])

    assert len(assumptions) == 2
    assert assumptions[0].startswith("Which country? — not asked (non-interactive run)")
    assert "most likely reading" in assumptions[1]


def test_answers_become_assumptions_and_unanswered_ones_are_marked() -> None:
    lines = assumptions_from_answers([("Which country?", " Germany "), ("Which year?", "")])

    assert lines[0] == "Which country? — the client answered: Germany"
    assert lines[1].startswith("Which year? — left unanswered")


def test_the_clarification_schema_is_a_valid_closed_schema() -> None:
    schema = clarification_schema()

    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert sorted(schema["required"]) == sorted(schema["properties"])
