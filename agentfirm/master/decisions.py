"""Where the Master Agent asks a human. Front ends implement ``Decider`` (a terminal prompt, a TUI
modal, a Slack button); ``AutoDecider`` is the non-interactive policy of ``--yes``."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from agentfirm.domain.models import Plan, Task
from agentfirm.domain.policy import TaskPolicy
from agentfirm.domain.tools import ToolConsent, ToolRequest
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
        self,
        task: Task,
        plan: Plan,
        estimate: Estimate,
        budget_nano: int,
        *,
        tools: Sequence[ToolConsent] = (),
    ) -> PlanDecision:
        """``tools``: what becomes of the tools the plan may call that may change things,
        said with the question."""
        ...

    async def budget_exceeded(self, task: Task, info: dict[str, Any]) -> BudgetDecision: ...

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision: ...

    # Optional: ``async def clarify(self, task, questions) -> list[tuple[str, str]] | None``.
    # Deciders without it (or returning None) cannot ask: the questions become assumptions.
    # Optional: ``async def module_failed(self, task, module_id, error, attempts) ->
    # FailureChoice`` (see ``FailureDecider``). Deciders without it stop the task as ``--yes``
    # does: it fails, nobody having chosen.
    # Optional: ``async def approve_tool(self, task_id, module_id, request) -> bool`` (see
    # ``ToolDecider``). Deciders without it deny every tool that may change things.


class ToolDecider(Protocol):
    """A decider that can allow a tool call with side effects."""

    async def approve_tool(self, task_id: str, module_id: str, request: ToolRequest) -> bool: ...


class FailureDecider(Protocol):
    """A decider that can say what to do about a failed module."""

    async def module_failed(
        self, task: Task, module_id: str, error: str, attempts: int
    ) -> FailureChoice: ...


AUTO_ACTOR = "auto:--yes"
"""The actor of ``--yes``'s decisions, in-process (``AutoDecider``) or answering a daemon's
questions (``cli_answers.AutoAnswers``): nobody chose, which a failed module's abort tells apart
(the task fails rather than being aborted by someone)."""


AUTO_NOTE = "decided non-interactively (--yes)"
AUTO_DECISIONS: dict[str, str] = {
    "plan": "approved",  # at the budget the task was submitted with
    "budget": "rejected",  # never add budget: the task stops, resumable with more (exit 3)
    "review": "approved",
    "clarify": "rejected",  # every question becomes an assumption, as when no one can ask
    "failure": "aborted",  # no one to choose retry or skip: the task ends
}
"""``AutoDecider``'s policy as decisions on approval rows: what a daemon decides at once for a
task created with ``--yes`` (``StoreDecider``), and what ``--yes`` answers to a daemon's
questions from a terminal (``cli.answers.AutoAnswers``)."""


def uncovered_refusal(uncovered: Sequence[Mapping[str, Any]]) -> str | None:
    """Why ``--yes`` refuses a plan leaving the ``uncovered`` checklist items (``item``, ``why``)
    without coverage — one line — or None when it leaves none: nobody is there to accept that
    the deliverable will miss what it is judged by."""
    if not uncovered:
        return None
    items = "; ".join(
        f"'{u.get('item', '')}'" + (f" ({u['why']})" if u.get("why") else "") for u in uncovered
    )
    return (
        f"--yes refuses a plan that leaves {len(uncovered)} quality checklist item(s) "
        f"uncovered: {items} — approve it interactively, or run again"
    )


def plan_refusal(plan: Plan) -> str | None:
    """``uncovered_refusal`` of ``plan``."""
    return uncovered_refusal([u.model_dump() for u in plan.uncovered])


class AutoDecider:
    """``--yes``: approve the plan at the given budget (unless it leaves checklist items
    uncovered: ``plan_refusal``), never add budget, approve the draft,
    stop on a failed module (the task fails), deny tools that may change things unless
    ``allowed_tools`` names them (``--allow-tool``).
    A request no persona clearly matches is bad input: a script must name ``--persona``."""

    actor = AUTO_ACTOR

    def __init__(self, allowed_tools: Collection[str] = ()) -> None:
        self.allowed_tools = frozenset(allowed_tools)

    async def approve_tool(self, task_id: str, module_id: str, request: ToolRequest) -> bool:
        return request.named_in(self.allowed_tools)

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
        self,
        task: Task,
        plan: Plan,
        estimate: Estimate,
        budget_nano: int,
        *,
        tools: Sequence[ToolConsent] = (),
    ) -> PlanDecision:
        refusal = plan_refusal(plan)
        if refusal is not None:
            return PlanDecision(False, budget_nano, refusal)
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


def tool_consent(decider: Decider, policy: TaskPolicy) -> tuple[bool, Collection[str]]:
    """Whether nobody will be asked about a tool that may change things (so it is denied
    unless named), and the names allowed then: ``--yes`` in this process (``AutoDecider``), a
    decider that cannot ask (denies them all), or a task whose policy says ``--yes`` (the
    daemon answers it so)."""
    if isinstance(decider, AutoDecider):
        allowed: Collection[str] = getattr(decider, "allowed_tools", ())  # a subclass may skip it
        return True, allowed
    if getattr(decider, "approve_tool", None) is None:
        return True, ()
    return policy.auto_approve, policy.allowed_tools
