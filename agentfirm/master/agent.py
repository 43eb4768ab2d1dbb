"""The Master Agent: takes a request through the whole lifecycle (ARCHITECTURE.md §3).

intake → classify → plan → approve(budget) → handoff → execute → review → assemble → close.
Every status change is a transition row and a ``task.transition`` event; every event the Build
Master publishes is copied into the store (deduped by seq) and handed to the front end's observer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog

from agentfirm.build.master import BuildMaster
from agentfirm.build.subagent import RouterLike
from agentfirm.bus.base import Bus
from agentfirm.costs import summarize
from agentfirm.domain import (
    Approval,
    ApprovalDecision,
    Event,
    ModuleStatus,
    Plan,
    Task,
    TaskSpec,
    TaskStatus,
    Tier,
)
from agentfirm.errors import AgentfirmError, BadInput, BudgetExceeded, ConfigError, TaskRejected
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.runners import InprocRunner, Runner, draft_markdown
from agentfirm.handoff.task_repo import publish_task_repo
from agentfirm.ids import new_id
from agentfirm.master.clarify import assumptions_for, assumptions_from_answers, clarifying_questions
from agentfirm.master.classify import classify_request
from agentfirm.master.decisions import Decider, ReviewDecision
from agentfirm.master.estimate import Estimate, Pricing, estimate_plan
from agentfirm.master.planning import adapt_plan
from agentfirm.master.task_lock import TaskLocks
from agentfirm.master.transitions import move
from agentfirm.money import nano_to_float, usd_to_nano
from agentfirm.personas import PersonaLibrary
from agentfirm.router.base import ChainEntry
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

S = TaskStatus
Observer = Callable[[Event], Awaitable[None] | None]
MAX_REVIEW_ROUNDS = 3
T = TypeVar("T")


@dataclass(frozen=True)
class RunResult:
    task_id: str
    status: str
    """``completed``, ``failed``, ``aborted``, ``rejected`` or ``budget_exhausted``."""
    persona: str | None
    deliverable: str | None
    repo: str | None
    budget_nano: int
    cost: dict[str, Any]
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "task_id": self.task_id,
            "status": self.status,
            "persona": self.persona,
            "deliverable": self.deliverable,
            "repo": self.repo,
            "budget_usd": nano_to_float(self.budget_nano),
            "cost": self.cost,
        }
        if self.error:
            out["error"] = self.error
        return out


class MasterRouter(RouterLike, Protocol):
    """What the Master Agent needs of the Model Router: calls, and which model serves a tier."""

    def entry_for(self, tier: Tier) -> ChainEntry: ...


class _BudgetStop(Exception):
    """Internal: the human (or --yes) declined to add budget."""


def _budget_info(err: BudgetExceeded) -> dict[str, Any]:
    return {
        "spent_usd": float(err.spent_usd),
        "ceiling_usd": float(err.ceiling_usd),
        "needed_usd": float(err.needed_usd),
    }


@dataclass
class MasterAgent:
    store: Store
    bus: Bus
    build: BuildMaster
    personas: PersonaLibrary
    pricing: Pricing
    repos: RepoBackend
    decider: Decider
    locks: TaskLocks
    observer: Observer | None = None
    runner: Runner | None = None
    """Where the Build Master runs the modules; ``None``: here, in this process."""
    router: MasterRouter | None = None
    """For the Master's own calls (classification, clarification, planning); ``None``:
    keywords and templates only."""
    intake_budget_nano: int = 0
    """The ceiling a new task starts with, before a plan and its budget are approved."""
    _declined: set[str] = field(default_factory=set)

    async def _move(self, task_id: str, to: TaskStatus, reason: str = "") -> None:
        await move(self.store, self.bus, task_id, to, actor=self.decider.actor, reason=reason)

    # ------------------------------------------------------------------ intake → plan
    def _model_can(self, tier: Tier) -> bool:
        """Whether a real model serves ``tier``. The offline provider's output is a schema-true
        simulation: good for running modules, meaningless for choosing a persona or reshaping
        a plan, so those decisions fall back to keywords and the template offline."""
        if self.router is None:
            return False
        try:
            return self.router.entry_for(tier).provider != "offline"
        except ConfigError:
            return False

    async def _create(self, request: str, persona: str | None) -> Task:
        task = Task(id=new_id("t"), request=request, persona=persona)
        self.locks.acquire(task.id)
        await self.store.create_task(task, actor=self.decider.actor)
        if self.intake_budget_nano:  # pays for classification, clarification and planning
            await self.store.set_budget(task.id, self.intake_budget_nano)
        return task

    async def intake(self, request: str, *, persona: str | None = None) -> Task:
        """Create the task and classify it: ``--persona``, else keywords, else (with a real
        model) a utility-tier call, else the decider is asked. Bad input (empty request, unknown
        persona, no persona under ``--yes``) is refused before anything is written — except
        after an LLM classification, whose ledger rows keep their task (marked failed)."""
        request = request.strip()
        if not request:
            raise BadInput("the request is empty", hint='say what you need, e.g. agentfirm run "…"')
        chosen = self.personas.get(persona).id if persona else None
        classification = self.personas.classify(request)
        task: Task | None = None
        if chosen is None and classification.persona is None and self._model_can("utility"):
            task = await self._create(request, None)
            classification = await classify_request(
                self.personas, request, router=self.router, task_id=task.id
            )
        if chosen is not None:
            reason = "--persona"
        elif classification.persona is not None:
            chosen = classification.persona
            words = ", ".join(classification.matched.get(chosen, []))
            reason = classification.reason or f"{classification.stage}: {words}"
        else:
            ranked = sorted(classification.scores, key=lambda p: -classification.scores[p])
            candidates = ranked or [p.id for p in self.personas.all()]
            try:
                picked = await self.decider.choose_persona(
                    request, candidates, classification.scores
                )
            except BadInput as err:
                if task is not None:
                    await self._move(task.id, S.CLASSIFIED, "no persona fits")
                    await self._move(task.id, S.FAILED, str(err))
                raise
            chosen = self.personas.get(picked).id
            reason = f"chosen by {self.decider.actor}"
        if task is None:
            task = await self._create(request, chosen)
        else:
            task.persona = chosen
            await self.store.save_task(task)
        await self._move(task.id, S.CLASSIFIED, reason)
        return await self.store.get_task(task.id)

    def estimate(self, spec: TaskSpec) -> Estimate:
        return estimate_plan(spec.plan, self.pricing, checklist_items=len(spec.quality_checklist))

    async def plan(self, task: Task) -> tuple[TaskSpec, Estimate]:
        """Clarify if the request is ambiguous (asking the decider, or recording assumptions),
        adapt the persona's template to it, and leave the task awaiting plan approval."""
        persona = self.personas.get(task.persona or "")
        questions: list[str] = []
        if self.router is not None:
            questions = await clarifying_questions(
                self.router, persona=persona, request=task.request, task_id=task.id
            )
        answers: list[tuple[str, str]] = []
        assumptions: list[str] = []
        if questions:
            await self._move(task.id, S.CLARIFYING, f"{len(questions)} question(s)")
            ask = getattr(self.decider, "clarify", None)
            got = await ask(task, questions) if ask is not None else None
            if got is None:
                assumptions = assumptions_for(questions)
            else:
                answers = list(got)
                assumptions = assumptions_from_answers(answers)
        if self._model_can("reasoning") and self.router is not None:
            outcome = await adapt_plan(
                self.router,
                persona=persona,
                request=task.request,
                answers=answers,
                task_id=task.id,
            )
            plan, why = outcome.plan, outcome.reason
        else:
            plan = persona.to_plan()
            why = f"template {persona.id} as is (no real model to adapt it)"
        spec = TaskSpec(
            task_id=task.id,
            request=task.request,
            persona=persona.id,
            persona_name=persona.name,
            plan=plan,
            quality_checklist=list(persona.quality_checklist),
            budget_nano=0,
            assumptions=[*(assumptions or ["The request is taken as written."]), f"Plan: {why}"],
        )
        task = await self.store.get_task(task.id)
        task.spec = spec
        await self.store.save_task(task)
        await self._move(task.id, S.PLANNED, f"{why}; {len(plan.modules)} modules")
        await self._move(task.id, S.AWAITING_PLAN_APPROVAL)
        return spec, self.estimate(spec)

    # ------------------------------------------------------------------ the whole run
    async def run(
        self, request: str, *, persona: str | None = None, budget_usd: Any = None
    ) -> RunResult:
        """intake → plan → approval → execution → review → close, in one call."""
        task = await self.intake(request, persona=persona)
        _spec, estimate = await self.plan(task)
        budget_nano = (
            usd_to_nano(budget_usd) if budget_usd is not None else estimate.suggested_budget_nano()
        )
        return await self.approve_and_execute(task.id, budget_nano)

    async def approve_and_execute(self, task_id: str, budget_nano: int) -> RunResult:
        """Put the plan of a task awaiting approval to the decider at ``budget_nano``; on approval
        hand it off and run it through review to the end."""
        self.locks.acquire(task_id)
        task = await self.store.get_task(task_id)
        if task.status is not S.AWAITING_PLAN_APPROVAL or task.spec is None:
            raise BadInput(
                f"task {task_id} is {task.status}, not awaiting plan approval",
                hint="see `agentfirm tasks show " + task_id + "`",
            )
        spec = task.spec
        decision = await self.decider.approve_plan(
            task, spec.plan, self.estimate(spec), budget_nano
        )
        if not decision.approved:
            await self._move(task_id, S.REJECTED, decision.reason or "plan rejected")
            return await self._result(task_id, "rejected")
        spec = spec.model_copy(update={"budget_nano": decision.budget_nano})
        task.spec, task.budget_nano = spec, decision.budget_nano
        await self.store.save_task(task)
        await self.store.set_budget(task_id, decision.budget_nano)
        budget = nano_to_float(decision.budget_nano)
        await self._move(task_id, S.APPROVED, f"budget ${budget:.2f}; {decision.reason}".strip())

        return await self._hand_off(task_id, spec)

    async def resume(self, task_id: str, *, budget_nano: int | None = None) -> RunResult:
        """Pick a task up from its persisted state after a crash (or a stop for budget) and drive
        it to the end. Completed modules are not run again; reservations a dead process left
        behind are released first, so its unfinished calls cost nothing."""
        self.locks.acquire(task_id)
        task = await self.store.get_task(task_id)
        if task.status.is_final:
            raise BadInput(f"task {task_id} is already {task.status}: nothing to resume")
        released = await self.store.release_reservations(task_id)
        if released:
            log.warning("task.reservations_released", task_id=task_id, count=released)
        if task.status is S.AWAITING_BUDGET and budget_nano is not None:
            back_to = (await self.store.list_transitions(task_id))[-1].from_status or S.EXECUTING
            await self._raise_ceiling(
                task_id, budget_nano, back_to, f"budget set to ${nano_to_float(budget_nano):.2f}"
            )
        if task.status is S.RECEIVED:
            await self._move(task_id, S.CLASSIFIED, "resumed")
            task = await self.store.get_task(task_id)
        if task.status in (S.CLASSIFIED, S.CLARIFYING):
            await self.plan(task)
        elif task.status is S.PLANNED:
            await self._move(task_id, S.AWAITING_PLAN_APPROVAL, "resumed")
        task = await self.store.get_task(task_id)
        if task.status is S.AWAITING_PLAN_APPROVAL:
            spec = task.spec
            assert spec is not None  # planned tasks always carry their spec
            default = budget_nano or self.estimate(spec).suggested_budget_nano()
            return await self.approve_and_execute(task_id, default)
        if task.spec is None:
            raise BadInput(f"task {task_id} has no plan to resume from")
        if task.status is S.APPROVED:
            return await self._hand_off(task_id, task.spec)
        return await self._drive(task_id, task.spec)

    async def _hand_off(self, task_id: str, spec: TaskSpec) -> RunResult:
        """Publish the task repo (spec, persona, notebook) in one commit, then drive."""
        published = await publish_task_repo(
            self.repos, spec, persona=self.personas.get(spec.persona)
        )
        task = await self.store.get_task(task_id)
        task.repo_path = published.location
        await self.store.save_task(task)
        where = f"runner {self._runner.name}"
        if published.launch_url:
            where += f"; launch {published.launch_url}"
        await self._move(task_id, S.HANDED_OFF, where)
        return await self._drive(task_id, spec)

    @property
    def _runner(self) -> Runner:
        return self.runner or InprocRunner(self.build)

    async def _drive(self, task_id: str, spec: TaskSpec) -> RunResult:
        """Advance the task from whatever state it is in until it ends or waits for a human who
        is not there. Each step reads the persisted status, so a crash at any point resumes here."""
        markdown: str | None = None
        rounds = 0
        try:
            while True:
                task = await self.store.get_task(task_id)
                status = task.status
                if status in (S.HANDED_OFF, S.REVISING):
                    await self._move(task_id, S.EXECUTING)
                elif status is S.EXECUTING:
                    notes = await self._revision_notes(task_id)
                    markdown = await self._gated(
                        task_id, partial(self._runner.execute, spec, notes=notes)
                    )
                    await self._move(task_id, S.AWAITING_REVIEW, "draft stitched")
                elif status is S.AWAITING_REVIEW:
                    # after a resume the draft in memory died with its process: stitch again
                    markdown = markdown or await self._stitch(task_id, spec)
                    rounds += 1
                    if rounds > MAX_REVIEW_ROUNDS + 1:
                        raise BadInput(f"more than {MAX_REVIEW_ROUNDS} revision rounds")
                    if await self._review(task, spec, markdown) == "rejected":
                        return await self._result(task_id, "rejected")
                    if (await self.store.get_task(task_id)).status is S.REVISING:
                        markdown = None
                elif status is S.ASSEMBLING:
                    markdown = markdown or await self._stitch(task_id, spec)
                    return await self._close(task_id, spec, markdown)
                elif status is S.AWAITING_BUDGET:
                    if not await self._answer_budget(task_id, {}, already_waiting=True):
                        raise _BudgetStop("budget exhausted; the task waits for more budget")
                else:
                    raise BadInput(f"task {task_id} is {status}: nothing to drive")
        except _BudgetStop as stop:
            return await self._result(task_id, "budget_exhausted", error=str(stop))
        except TaskRejected as err:
            if task_id in self._declined:
                return await self._result(task_id, "budget_exhausted", error=str(err))
            await self._move(task_id, S.ABORTED, str(err))
            return await self._result(task_id, "aborted", error=str(err))
        except BadInput:
            raise
        except Exception as err:  # a failed module or provider: the task fails, the data stays
            log.error("task.failed", task_id=task_id, error=str(err))
            await self._move(task_id, S.FAILED, str(err))
            return await self._result(task_id, "failed", error=str(err))

    async def _stitch(self, task_id: str, spec: TaskSpec) -> str:
        """The current draft: rebuilt from the store when one was stitched (a resumed task),
        stitched here otherwise."""
        with contextlib.suppress(AgentfirmError):
            return await draft_markdown(self.store, spec)
        _draft, markdown = await self._gated(task_id, partial(self.build.stitch, spec))
        return markdown

    async def _review(self, task: Task, spec: TaskSpec, markdown: str) -> str:
        """Ask for the draft's review and record the decision (an approval row). A revision
        marks the modules to re-run pending BEFORE the task moves, so a crash cannot lose it."""
        review = await self.decider.review_draft(task, markdown)
        if not getattr(self.decider, "records_approvals", False):
            await self._record_review(task.id, review)
        if review.kind == "approve":
            await self._move(task.id, S.ASSEMBLING, review.notes or "draft approved")
            return "approved"
        if review.kind == "reject":
            await self._move(task.id, S.REJECTED, review.notes or "draft rejected")
            return "rejected"
        rerun = self._descendants(spec.plan, review.modules)
        for run in await self.store.list_module_runs(task.id):
            if run.module_id in rerun:
                await self.store.upsert_module_run(
                    run.model_copy(update={"status": ModuleStatus.PENDING})
                )
        await self._move(task.id, S.REVISING, f"re-run {', '.join(sorted(rerun))}")
        return "revise"

    async def _record_review(self, task_id: str, review: ReviewDecision) -> None:
        """The review as an approval row, for deciders that do not keep their own (a terminal
        prompt, ``--yes``): the audit trail, and the notes a resumed revision needs."""
        approval = Approval(
            id=new_id("ap"),
            task_id=task_id,
            kind="review",
            payload={"modules": list(review.modules)},
        )
        await self.store.create_approval(approval)
        decision: ApprovalDecision = (
            "approved"
            if review.kind == "approve"
            else "rejected"
            if review.kind == "reject"
            else "revise"
        )
        await self.store.decide_approval(
            approval.id, decision, actor=self.decider.actor, notes=review.notes
        )

    async def _revision_notes(self, task_id: str) -> str:
        """The notes of the latest revision, for the modules a revision set pending."""
        reviews = [a for a in await self.store.list_approvals(task_id) if a.kind == "review"]
        return reviews[-1].notes if reviews and reviews[-1].decision == "revise" else ""

    @staticmethod
    def _descendants(plan: Plan, named: Collection[str]) -> set[str]:
        known = {m.id for m in plan.modules}
        unknown = sorted(set(named) - known)
        if unknown:
            raise BadInput(
                f"unknown module(s) to revise: {', '.join(unknown)}",
                hint=f"use one of: {', '.join(sorted(known))}",
            )
        selected = set(named) if named else set(known)
        changed = True
        while changed:
            changed = False
            for module in plan.modules:
                if module.id not in selected and selected.intersection(module.depends_on):
                    selected.add(module.id)
                    changed = True
        return selected

    # ------------------------------------------------------------------ events and budget
    async def _gated(self, task_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` with events flowing; a call the budget refused outside the Build Master's
        own gate is put to the decider here, and the work retried once the ceiling is raised."""
        while True:
            try:
                return await self._with_events(task_id, work())
            except BudgetExceeded as err:
                if not await self._answer_budget(task_id, _budget_info(err)):
                    raise _BudgetStop(str(err)) from err

    async def _with_events(self, task_id: str, work: Awaitable[T]) -> T:
        """Run Build Master work while copying its events to the store and the observer, and
        answering the budget prompts its gate publishes."""
        handling = asyncio.Lock()
        pump = asyncio.create_task(self._pump(task_id, handling))
        try:
            return await work
        finally:
            # Stop the pump between two events, never inside one: an event recorded in the store
            # but cut off before the observer saw it would be lost to the front end (drain skips
            # what the store already has).
            async with handling:
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await self._drain(task_id)

    async def _last_seq(self, task_id: str) -> int:
        events = await self.store.list_events(task_id)
        return events[-1].seq if events else 0

    async def _pump(self, task_id: str, handling: asyncio.Lock) -> None:
        async for event in self.bus.subscribe(task_id, after_seq=await self._last_seq(task_id)):
            async with handling:
                await self._handle(event)

    async def _drain(self, task_id: str) -> None:
        drained = getattr(self.bus, "wait_drained", None)
        if drained is not None:  # a bus with an outbox: what it still holds is not replayable yet
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await drained()
        for event in await self.bus.replay(task_id, after_seq=await self._last_seq(task_id)):
            await self._handle(event)

    async def _handle(self, event: Event) -> None:
        if not await self.store.record_event(event):
            return
        if self.observer is not None:
            maybe = self.observer(event)
            if maybe is not None:
                await maybe
        if event.type == "budget.exceeded":
            await self._answer_budget(event.task_id, event.payload)

    async def _answer_budget(
        self, task_id: str, info: dict[str, Any], *, already_waiting: bool = False
    ) -> bool:
        """Ask whether to raise the ceiling; True when it was raised. Declining leaves the task in
        ``awaiting_budget`` (resumable once budget is added) and tells the Build Master to stop.
        ``already_waiting``: a resumed task, whose way back is its last transition's origin."""
        if already_waiting:
            previous = (await self.store.list_transitions(task_id))[-1].from_status or S.EXECUTING
        else:
            previous = (await self.store.get_task(task_id)).status
            await self._move(task_id, S.AWAITING_BUDGET, "a call did not fit under the ceiling")
        task = await self.store.get_task(task_id)
        if not info:
            budget = await self.store.get_budget(task_id)
            info = {
                "spent_usd": nano_to_float(budget.spent_nano),
                "ceiling_usd": nano_to_float(budget.ceiling_nano),
                "needed_usd": 0.0,
            }
        decision = await self.decider.budget_exceeded(task, info)
        if decision.new_ceiling_nano is None:
            self._declined.add(task_id)
            if already_waiting:
                return False
            await self.bus.publish(
                task_id, "abort", {"reason": "budget_exhausted"}, stream="control"
            )
            return False
        await self._raise_ceiling(
            task_id, decision.new_ceiling_nano, previous, decision.reason or "budget raised"
        )
        return True

    async def _raise_ceiling(
        self, task_id: str, ceiling_nano: int, back_to: TaskStatus, reason: str
    ) -> None:
        await self.store.set_budget(task_id, ceiling_nano)
        task = await self.store.get_task(task_id)
        task.budget_nano = ceiling_nano
        await self.store.save_task(task)
        await self._move(task_id, back_to, reason)
        await self.bus.publish(
            task_id,
            "budget.adjusted",
            {"ceiling_usd": nano_to_float(ceiling_nano)},
            stream="control",
        )

    # ------------------------------------------------------------------ close
    async def _close(self, task_id: str, spec: TaskSpec, markdown: str) -> RunResult:
        quality = await self._gated(task_id, lambda: self.build.judge(spec, markdown))
        task = await self.store.get_task(task_id)
        repo = task.repo_path or await self.repos.create(task_id)
        ledger = await self.store.list_ledger(task_id)
        await self.repos.write_files(
            repo,
            {
                "deliverable.md": markdown,
                "quality.json": json.dumps(quality, indent=2) + "\n",
                "costs.json": json.dumps(summarize(ledger, with_calls=True), indent=2) + "\n",
            },
        )
        sha = await self.repos.commit(repo, f"agentfirm: deliverable for task {task_id}")
        task.deliverable_path = f"{repo}/deliverable.md"
        await self.store.save_task(task)
        await self._move(task_id, S.COMPLETED, f"committed {sha[:12]}")
        await self.bus.publish(
            task_id,
            "task.completed",
            {
                "deliverable": task.deliverable_path,
                "repo": repo,
                "commit": sha,
                "quality": {"passed": quality.get("passed"), "failed": quality.get("failed")},
                "cost": summarize(ledger),
            },
        )
        await self._drain(task_id)
        return await self._result(task_id, "completed")

    async def _result(self, task_id: str, status: str, *, error: str | None = None) -> RunResult:
        task = await self.store.get_task(task_id)
        ledger = await self.store.list_ledger(task_id)
        budget = await self.store.get_budget(task_id) if task.budget_nano else None
        return RunResult(
            task_id=task_id,
            status=status,
            persona=task.persona,
            deliverable=task.deliverable_path,
            repo=task.repo_path,
            budget_nano=budget.ceiling_nano if budget else task.budget_nano,
            cost=summarize(ledger),
            error=error,
        )


__all__ = ["BudgetExceeded", "MasterAgent", "RunResult"]
