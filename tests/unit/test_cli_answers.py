"""Answering a daemon-hosted task's questions from their payloads: the terminal prompts and the
``--yes`` policy, and how a driver's ``task.result`` becomes the run's outcome."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from agentfirm.cli.answers import AUTO_DECISIONS, AutoAnswers, FirstPlanApproved, TerminalAnswers
from agentfirm.cli.follow import result_or_raise
from agentfirm.errors import AgentfirmError, BadInput
from agentfirm.master.decisions import AutoDecider

PLAN = {
    "question": "Approve the plan?",
    "persona": "patent_research",
    "modules": [{"id": "search", "tier": "execution", "depends_on": []}],
    "waves": [["search"]],
    "estimate": {
        "expected_usd": 0.1,
        "worst_usd": 0.2,
        "by_module": {"search": {"tier": "execution", "expected_usd": 0.1, "worst_usd": 0.2}},
    },
    "budget_usd": 5.0,
}


class ScriptedConsole(Console):
    def __init__(self, *answers: str) -> None:
        super().__init__(file=io.StringIO(), width=120)
        self.answers = list(answers)
        self.prompts: list[str] = []

    def input(self, prompt: Any = "", **kwargs: Any) -> str:
        self.prompts.append(str(prompt))
        return self.answers.pop(0)

    @property
    def text(self) -> str:
        assert isinstance(self.file, io.StringIO)
        return self.file.getvalue()


def _ask(kind: str, payload: dict[str, Any], *answers: str) -> Any:
    out = ScriptedConsole(*answers)
    choice = TerminalAnswers(out, actor="cli:ann").answer({"kind": kind, "payload": payload})
    assert out.answers == [], "every scripted answer was asked for"
    return choice


def test_the_plan_prompt_shows_the_plan_and_asks_again_after_a_bad_budget() -> None:
    out = ScriptedConsole("b lots", "b $3")

    choice = TerminalAnswers(out, actor="cli:ann").answer({"kind": "plan", "payload": PLAN})

    assert choice == ("approved", {"budget_usd": "3"})
    assert "search" in out.text
    assert "positive amount" in out.text


@pytest.mark.parametrize(
    ("kind", "payload", "answers", "expected"),
    [
        ("plan", PLAN, ["y"], ("approved", {})),
        ("plan", PLAN, ["n"], ("rejected", {})),
        ("plan", PLAN, ["l"], None),
        ("budget", {"suggested_ceiling_usd": 8}, [""], ("approved", {})),
        ("budget", {"suggested_ceiling_usd": 8}, ["x", "9.5"], ("approved", {"budget_usd": "9.5"})),
        (
            "budget",
            {},
            ["s"],
            ("rejected", {"notes": "stopped at the budget question"}),
        ),
        ("budget", {}, ["a"], ("aborted", {})),
        ("review", {"draft_markdown": "# Draft"}, [""], ("approved", {})),
        ("review", {"draft_markdown": "# Draft"}, ["j"], ("rejected", {})),
        (
            "review",
            {"draft_markdown": "# Draft"},
            ["r", "cite sources", "search, claims"],
            ("revise", {"notes": "cite sources", "modules": ["search", "claims"]}),
        ),
        ("failure", {"module_id": "search", "error": "boom", "attempts": 3}, ["r"], ("retry", {})),
        ("failure", {"module_id": "search", "error": "boom", "attempts": 3}, ["s"], ("skip", {})),
        ("failure", {"module_id": "search"}, ["?", "a"], ("aborted", {})),
        ("failure", {"module_id": "[bold]x", "error": "[/oops]"}, [""], ("retry", {})),
    ],
)
def test_each_prompt_maps_keys_to_the_daemon_decisions(
    kind: str, payload: dict[str, Any], answers: list[str], expected: Any
) -> None:
    assert _ask(kind, payload, *answers) == expected


def test_clarify_answers_by_question_id_and_blank_takes_the_default() -> None:
    payload = {
        "questions": [
            {"id": "q1", "question": "Which jurisdiction?", "default": "EP"},
            {"id": "q2", "question": "Deadline?", "default": ""},
        ]
    }

    assert _ask("clarify", payload, "", "June") == (
        "approved",
        {"answers": {"q1": "EP", "q2": "June"}},
    )


def test_an_unknown_kind_is_left_pending_on_the_terminal() -> None:
    assert _ask("audit", {"question": "Sign off?"}) is None


@pytest.mark.parametrize("kind", sorted(AUTO_DECISIONS))
def test_yes_answers_every_known_kind(kind: str) -> None:
    decision, extra = AutoAnswers().answer({"kind": kind, "payload": PLAN, "task_id": "t_1"}) or (
        "",
        {},
    )

    assert decision == AUTO_DECISIONS[kind]
    assert extra == {}


async def test_yes_on_the_daemon_follows_auto_decider_in_process() -> None:
    """Fails when ``AutoDecider`` changes its policy: ``AUTO_DECISIONS`` must follow it."""
    auto = AutoDecider()
    budget = await auto.budget_exceeded(None, {})  # type: ignore[arg-type]
    review = await auto.review_draft(None, "")  # type: ignore[arg-type]
    failure = await auto.module_failed(None, "m", "boom", 3)  # type: ignore[arg-type]

    in_process = {
        "clarify": "rejected" if getattr(auto, "clarify", None) is None else "approved",
        "budget": "rejected" if budget.new_ceiling_nano is None else "approved",
        "review": {"approve": "approved", "reject": "rejected"}.get(review.kind, review.kind),
        "failure": {"abort": "aborted"}.get(failure, failure),
    }
    assert in_process == {kind: AUTO_DECISIONS[kind] for kind in in_process}
    assert AutoAnswers.actor == auto.actor


def test_yes_refuses_a_question_it_cannot_answer() -> None:
    with pytest.raises(BadInput, match="audit question"):
        AutoAnswers().answer({"kind": "audit", "payload": {}, "task_id": "t_1"})


def test_yes_shows_the_plan_it_approves() -> None:
    out = ScriptedConsole()

    AutoAnswers(out).answer({"kind": "plan", "payload": PLAN})

    assert "budget ceiling" in out.text


def test_approve_answers_the_first_plan_question_and_hands_on_the_rest() -> None:
    answers = FirstPlanApproved(AutoAnswers(), actor="cli:ann")

    first = answers.answer({"kind": "plan", "payload": PLAN})
    first_actor = answers.actor
    review = answers.answer({"kind": "review", "payload": {}})

    assert (first, first_actor) == (("approved", {}), "cli:ann")
    assert (review, answers.actor) == (("approved", {}), "auto:--yes")


def test_a_result_payload_is_the_run_document() -> None:
    document = {"task_id": "t_1", "status": "completed"}

    assert result_or_raise({"result": document}, "t_1", 9) == document


def test_a_refusal_keeps_its_message_and_exit_code() -> None:
    with pytest.raises(AgentfirmError, match="nothing to resume") as caught:
        result_or_raise(
            {"error": "task t_1 is already completed: nothing to resume", "exit_code": 2}, "t_1", 9
        )

    assert caught.value.exit_code == 2


def test_a_stream_ending_without_a_result_says_where_to_pick_up() -> None:
    with pytest.raises(AgentfirmError, match="--after-seq 9") as caught:
        result_or_raise(None, "t_1", 9)

    assert caught.value.exit_code == 1


class _Personas:
    def personas(self) -> list[dict[str, Any]]:
        return [{"id": "patent_research"}, {"id": "market_research"}]


def test_a_request_the_daemon_cannot_place_asks_for_a_persona_on_the_terminal() -> None:
    from agentfirm.cli.commands.run import _choose_persona

    out = ScriptedConsole("7", "market_research")

    assert _choose_persona(_Personas(), out) == "market_research"
    assert "from 1 to 2" in out.text
