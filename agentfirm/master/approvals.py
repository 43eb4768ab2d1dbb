"""Approvals as a core API: the Master Agent's decision points become approval rows any front end
(CLI, TUI, Slack, the daemon's HTTP API) can list and decide, from any process.

``StoreDecider`` implements ``Decider`` by persisting: each decision point creates an approval row
whose payload carries what a front end shows, publishes ``approval.requested`` and waits for
``decide`` (see ``approval_book``). Kinds and their payloads:

- ``clarify``: ``questions: [{id, question, default}]``; decided ``approved`` with ``answers``
  (question id → answer; a blank answer, or the default, leaves the question to an assumption),
  ``rejected`` (assume every answer) or ``aborted`` (the task is aborted).
- ``plan``: modules, waves, estimate, the proposed budget; ``approved`` (with a budget),
  ``rejected``, ``aborted``.
- ``budget``: spend, ceiling, the suggested new ceiling; ``approved`` (with a budget) or not.
- ``review``: the draft; ``approved``, ``revise`` (with modules and notes), ``rejected``.
- ``failure``: ``module_id``, ``error``, ``attempts``; ``retry`` (or ``approved``), ``skip``,
  ``aborted`` (or ``rejected``).
- ``tool``: ``module_id``, ``call_id``, ``tool``, ``origin``, ``arguments`` of a tool call that
  may change things; ``approved`` runs it, ``rejected`` (or ``aborted``) denies it.

After a restart the task asks again and gets its earlier row back, pending or already decided, so
a decision is never asked twice nor lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agentfirm.domain.calls import DELIVERABLE_ID
from agentfirm.domain.costs import summarize
from agentfirm.domain.graph import waves
from agentfirm.domain.models import Approval, Plan, Task
from agentfirm.domain.tools import ToolConsent, ToolRequest
from agentfirm.errors import TaskRejected
from agentfirm.master.approval_book import ApprovalBook
from agentfirm.master.approval_rules import (
    DECISIONS,
    QUESTION,
    Outcome,
    suggested_ceiling,
)
from agentfirm.master.decisions import (
    AutoDecider,
    BudgetDecision,
    FailureChoice,
    PlanDecision,
    ReviewDecision,
)
from agentfirm.master.estimate import Estimate
from agentfirm.money import nano_to_float

CLARIFY_DEFAULT = "the most likely reading of the request"
"""A clarify question's default answer: answering with it (or blank) leaves it assumed."""
_FAILURE_CHOICE: dict[str, FailureChoice] = {
    "retry": "retry",
    "approved": "retry",
    "skip": "skip",
}


class StoreDecider(ApprovalBook):
    """``Decider`` that persists every question as an approval row and waits for ``decide``.

    ``actor`` names the host in the transition log (``daemon``); the human who decided is in the
    approval row and in the transition's reason. A request no persona clearly matches is bad
    input, as under ``--yes``: there is no approval kind for choosing a persona."""

    records_approvals = True
    """Its questions are approval rows already: the Master Agent must not add its own."""

    # ------------------------------------------------------------------ Decider
    async def choose_persona(
        self, request: str, candidates: Sequence[str], scores: dict[str, float]
    ) -> str:
        return await AutoDecider().choose_persona(request, candidates, scores)

    async def approve_plan(
        self,
        task: Task,
        plan: Plan,
        estimate: Estimate,
        budget_nano: int,
        *,
        tools: Sequence[ToolConsent] = (),
    ) -> PlanDecision:
        levels = plan.waves or waves(plan.modules)
        budget = nano_to_float(budget_nano)
        denied = sum(1 for t in tools if t.way == "denied")
        payload = {
            QUESTION: (
                f"Approve the plan — {len(plan.modules)} modules in {len(levels)} waves, expected "
                f"${nano_to_float(estimate.expected_nano):.4f}, worst case "
                f"${nano_to_float(estimate.worst_nano):.4f} — at a budget of ${budget:.2f}"
                + (f"; {denied} tool(s) it may call will be denied (--yes)" if denied else "")
                + "?"
            ),
            "persona": task.persona,
            "modules": [
                m.model_dump(mode="json", include={"id", "title", "tier", "depends_on"})
                for m in plan.modules
            ],
            "waves": levels,
            "estimate": estimate.to_json(),
            "suggested_budget_usd": nano_to_float(estimate.suggested_budget_nano()),
            "budget_usd": budget,
            "uncovered": [u.model_dump(mode="json") for u in plan.uncovered],
            "tools": [t.to_json() for t in tools],
        }
        _row, outcome = await self.ask(task.id, "plan", payload)
        if outcome.decision == "approved":
            return PlanDecision(True, outcome.budget_nano or budget_nano, outcome.because())
        return PlanDecision(False, budget_nano, "plan " + outcome.because())

    async def budget_exceeded(self, task: Task, info: dict[str, Any]) -> BudgetDecision:
        spend = summarize(await self.store.list_ledger(task.id))
        suggested = suggested_ceiling(info)
        payload = {
            QUESTION: (
                f"Budget reached: spent ${float(info.get('spent_usd', 0)):.4f} of "
                f"${float(info.get('ceiling_usd', 0)):.4f}. Raise the ceiling (suggested "
                f"${nano_to_float(suggested):.2f}) or abort?"
            ),
            "spent_usd": float(info.get("spent_usd", spend["total_usd"])),
            "ceiling_usd": float(info.get("ceiling_usd", 0)),
            "needed_usd": float(info.get("needed_usd", 0)),
            "suggested_ceiling_usd": nano_to_float(suggested),
            "by_module": spend["by_module"],
            "by_tier": spend["by_tier"],
            "by_provider": spend["by_provider"],
        }
        _row, outcome = await self.ask(task.id, "budget", payload)
        if outcome.decision == "approved":
            return BudgetDecision(outcome.budget_nano or suggested, outcome.because())
        return BudgetDecision(None, outcome.because())

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        draft = (await self.store.latest_artifacts(task.id)).get(DELIVERABLE_ID)
        payload = {
            QUESTION: "Review the draft: approve it, revise (name modules to re-run), or reject?",
            "draft_markdown": draft_markdown,
            "artifact": {"module_id": DELIVERABLE_ID, "version": draft.version if draft else None},
            "modules": [m.id for m in task.spec.plan.modules] if task.spec else [],
        }
        _row, outcome = await self.ask(task.id, "review", payload)
        if outcome.decision == "approved":
            return ReviewDecision("approve", outcome.because())
        if outcome.decision == "revise":
            return ReviewDecision("revise", outcome.notes, outcome.modules)
        return ReviewDecision("reject", "draft " + outcome.because())

    async def clarify(self, task: Task, questions: Sequence[str]) -> list[tuple[str, str]] | None:
        """Ask the questions as one ``clarify`` approval. Approved: ``(question, answer)`` pairs
        (blank where unanswered); rejected: None (every question becomes an assumption). Raises
        ``TaskRejected`` when aborted."""
        items = [
            {"id": f"q{n}", "question": q, "default": CLARIFY_DEFAULT}
            for n, q in enumerate(questions, start=1)
        ]
        payload = {
            QUESTION: f"{len(items)} question(s) before planning: answer what you can; "
            "unanswered questions are assumed.",
            "questions": items,
        }
        row, outcome = await self.ask(task.id, "clarify", payload)
        if outcome.decision == "aborted":
            raise TaskRejected("clarification " + outcome.because())
        if outcome.decision != "approved":
            return None
        pairs = []
        for item in row.payload.get("questions") or items:
            answer = outcome.answers.get(str(item.get("id")), "").strip()
            pairs.append((str(item.get("question")), "" if answer == CLARIFY_DEFAULT else answer))
        return pairs

    async def clarify_asked(self, task_id: str) -> list[str]:
        """The questions of the ``clarify`` row asked since the task entered ``clarifying``
        (pending or decided), [] when none was. A task resumed while clarifying asks these
        again: a new clarification call may ask others, or none, and lose the answers."""
        row = await self.current(task_id, "clarify")
        items = row.payload.get("questions") or [] if row is not None else []
        return [str(q.get("question")) for q in items if isinstance(q, Mapping)]

    async def module_failed(
        self, task: Task, module_id: str, error: str, attempts: int
    ) -> FailureChoice:
        """Ask what to do about a failed module (a ``failure`` approval): retry, skip or abort."""
        payload = {
            QUESTION: f"Module {module_id} failed after {attempts} attempt(s): {error[:300]} — "
            "retry it, skip it (go on without its output) or abort the task?",
            "module_id": module_id,
            "error": error,
            "attempts": attempts,
            "modules": [m.id for m in task.spec.plan.modules] if task.spec else [],
        }

        def same(row: Approval) -> bool:
            p = row.payload
            return p.get("module_id") == module_id and p.get("attempts") == attempts

        _row, outcome = await self.ask(task.id, "failure", payload, same=same)
        return _FAILURE_CHOICE.get(outcome.decision, "abort")

    async def approve_tool(self, task_id: str, module_id: str, request: ToolRequest) -> bool:
        """Ask whether a tool call that may change things may run (a ``tool`` approval)."""
        payload = {
            QUESTION: f"Module {module_id} wants to run {request.origin or request.tool} "
            f"with {request.arguments[:300]} — it may change things outside this task. "
            "Allow it?",
            "module_id": module_id,
            "call_id": request.call_id,
            "tool": request.tool,
            "origin": request.origin,
            "arguments": request.arguments,
        }

        def same(row: Approval) -> bool:
            return row.payload.get("call_id") == request.call_id

        _row, outcome = await self.ask(task_id, "tool", payload, same=same)
        return outcome.decision == "approved"


__all__ = ["DECISIONS", "Outcome", "StoreDecider"]
