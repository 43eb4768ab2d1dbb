"""Where the Master Agent asks a human. Front ends implement ``Decider`` (a terminal prompt, a TUI
modal, a Slack button); ``AutoDecider`` is the non-interactive policy of ``--yes``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentfirm.domain import Plan, Task
from agentfirm.errors import BadInput
from agentfirm.master.estimate import Estimate


@dataclass(frozen=True)
class PlanDecision:
    approved: bool
    budget_nano: int
    reason: str = ""


@dataclass(frozen=True)
class BudgetDecision:
    """``new_ceiling_nano`` set → raise the ceiling and carry on; ``None`` → stop the task."""

    new_ceiling_nano: int | None
    reason: str = ""


FailureChoice = Literal["retry", "skip", "abort"]
"""What to do about a module that failed after its retries: run it again, go on without it
(its dependents run and are told it is missing; the deliverable marks it skipped), or stop (the
task is aborted by whoever chose it; under ``--yes``, where nobody chooses, it fails)."""
FAILURE_CHOICES: tuple[FailureChoice, ...] = ("retry", "skip", "abort")


@dataclass(frozen=True)
class ReviewDecision:
    kind: Literal["approve", "revise", "reject"]
    notes: str = ""
    modules: tuple[str, ...] = field(default_factory=tuple)


class Decider(Protocol):
    actor: str
    """Who decides, for the transition log (``cli:alice``, ``auto:--yes``, ``slack:U123``)."""

    async def choose_persona(
        self, request: str, candidates: Sequence[str], scores: dict[str, float]
    ) -> str: ...

    async def approve_plan(
        self, task: Task, plan: Plan, estimate: Estimate, budget_nano: int
    ) -> PlanDecision: ...

    async def budget_exceeded(self, task: Task, info: dict[str, Any]) -> BudgetDecision: ...

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision: ...

    # Optional: ``async def clarify(self, task, questions) -> list[tuple[str, str]] | None``.
    # Deciders without it (or returning None) cannot ask: the questions become assumptions.
    # Optional: ``async def module_failed(self, task, module_id, error, attempts) ->
    # FailureChoice`` (see ``FailureDecider``). Deciders without it stop the task as ``--yes``
    # does: it fails, nobody having chosen.


class FailureDecider(Protocol):
    """A decider that can say what to do about a failed module."""

    async def module_failed(
        self, task: Task, module_id: str, error: str, attempts: int
    ) -> FailureChoice: ...


AUTO_ACTOR = "auto:--yes"
"""The actor of ``--yes``'s decisions, in-process (``AutoDecider``) or answering a daemon's
questions (``cli_answers.AutoAnswers``): nobody chose, which a failed module's abort tells apart
(the task fails rather than being aborted by someone)."""


class AutoDecider:
    """``--yes``: approve the plan at the given budget, never add budget, approve the draft,
    stop on a failed module (the task fails).
    A request no persona clearly matches is bad input: a script must name ``--persona``."""

    actor = AUTO_ACTOR

    async def choose_persona(
        self, request: str, candidates: Sequence[str], scores: dict[str, float]
    ) -> str:
        close = [p for p in candidates if scores.get(p, 0) > 0]
        detail = (
            "; closest: " + ", ".join(f"{p} (score {scores[p]:g})" for p in close)
            if close
            else ": no persona's keywords occur in it"
        )
        raise BadInput(
            "no persona clearly matches the request" + detail,
            hint="pass --persona ID (see `agentfirm personas list`)",
        )

    async def approve_plan(
        self, task: Task, plan: Plan, estimate: Estimate, budget_nano: int
    ) -> PlanDecision:
        return PlanDecision(True, budget_nano, "approved non-interactively (--yes)")

    async def budget_exceeded(self, task: Task, info: dict[str, Any]) -> BudgetDecision:
        return BudgetDecision(None, "budget exhausted; no one to ask (--yes)")

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        return ReviewDecision("approve", "approved non-interactively (--yes)")

    async def module_failed(
        self, task: Task, module_id: str, error: str, attempts: int
    ) -> FailureChoice:
        """A script gets a failed run (exit 1), never a half-done deliverable."""
        return "abort"
