"""The Master Agent: takes a request through the whole lifecycle (ARCHITECTURE.md §3).

intake → classify → plan → approve(budget) → handoff → execute → review → assemble → close.
Every status change is a transition row and a ``task.transition`` event; every event the Build
Master publishes is copied into the store (deduped by seq) and handed to the front end's observer.

The steps live beside this module: ``intake`` (intake, clarification, planning), ``events`` (the
event pump), ``budgeting`` (the budget prompt), ``review`` (the draft review), ``failures``
(failed modules: retry, skip or abort) and ``close`` (quality, revision round, commit).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog

from agentfirm.build.master import BuildMaster
from agentfirm.build.module_runner import ModuleFailed
from agentfirm.bus.base import Bus
from agentfirm.domain import Task, TaskSpec, TaskStatus
from agentfirm.errors import AgentfirmError, BadInput, BudgetExceeded, NotFound, TaskRejected
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.runners import InprocRunner, Runner, draft_markdown
from agentfirm.handoff.task_repo import publish_task_repo
from agentfirm.master.budgeting import BudgetPrompt, BudgetStop, budget_info
from agentfirm.master.close import Closer
from agentfirm.master.decisions import Decider
from agentfirm.master.estimate import Estimate, Pricing, estimate_plan
from agentfirm.master.events import EventPump, Observer
from agentfirm.master.failures import FailureHandler, ModuleAborted
from agentfirm.master.intake import IntakeDesk, MasterRouter
from agentfirm.master.result import RunResult, result_of
from agentfirm.master.review import Reviewer
from agentfirm.master.task_lock import TaskLocks
from agentfirm.master.transitions import move
from agentfirm.money import nano_to_float, usd_to_nano
from agentfirm.personas import PersonaLibrary
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

S = TaskStatus
MAX_REVIEW_ROUNDS = 3
T = TypeVar("T")


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
    quality_revision: bool = True
    """Whether failing quality checklist items get one automatic revision round."""
    _budget: BudgetPrompt = field(init=False)
    _events: EventPump = field(init=False)
    _reviews: Reviewer = field(init=False)
    _failures: FailureHandler = field(init=False)
    _desk: IntakeDesk = field(init=False)

    def __post_init__(self) -> None:
        self._budget = BudgetPrompt(self.store, self.bus, self.decider)
        self._events = EventPump(self.store, self.bus, self.observer, self._budget.answer)
        self._reviews = Reviewer(self.store, self.bus, self.decider)
        self._failures = FailureHandler(self.store, self.bus, self.decider)
        self._desk = IntakeDesk(
            store=self.store,
            bus=self.bus,
            decider=self.decider,
            personas=self.personas,
            locks=self.locks,
            router=self.router,
            intake_budget_nano=self.intake_budget_nano,
            attachments=getattr(self.build, "attachments", None),
        )

    async def _move(self, task_id: str, to: TaskStatus, reason: str = "") -> None:
        await move(self.store, self.bus, task_id, to, actor=self.decider.actor, reason=reason)

    async def _result(self, task_id: str, status: str, *, error: str | None = None) -> RunResult:
        return await result_of(self.store, task_id, status, error=error)

    # ------------------------------------------------------------------ intake → plan
    async def intake(
        self, request: str, *, persona: str | None = None, attachments: Sequence[Path] = ()
    ) -> Task:
        """Create the task and classify it: ``--persona``, else keywords, else (with a real
        model) a utility-tier call, else the decider is asked. ``attachments`` are copied and
        indexed for the task's research agent. Bad input (empty request, unknown persona, no
        persona under ``--yes``, an attachment that is missing or not text — named) is refused
        before anything is written — except when a model classifies the request: that task is
        created first (its call is charged to it), and is kept, marked failed, with its ledger
        rows and attachments."""
        return await self._desk.intake(request, persona=persona, attachments=attachments)

    def estimate(self, spec: TaskSpec) -> Estimate:
        return estimate_plan(spec.plan, self.pricing, checklist_items=len(spec.quality_checklist))

    async def plan(self, task: Task) -> tuple[TaskSpec, Estimate]:
        """Clarify if the request is ambiguous (asking the decider, or recording assumptions),
        adapt the persona's template to it, and leave the task awaiting plan approval."""
        spec = await self._desk.plan(task)
        return spec, self.estimate(spec)

    # ------------------------------------------------------------------ the whole run
    async def run(
        self,
        request: str,
        *,
        persona: str | None = None,
        budget_usd: Any = None,
        attachments: Sequence[Path] = (),
    ) -> RunResult:
        """intake → plan → approval → execution → review → close, in one call."""
        task = await self.intake(request, persona=persona, attachments=attachments)
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
        if task.status in (S.RECEIVED, S.CLASSIFIED, S.CLARIFYING) and self.intake_budget_nano:
            # A crash between creating the task and setting its intake budget leaves none, and
            # every planning call would be refused.
            try:
                await self.store.get_budget(task_id)
            except NotFound:
                await self.store.set_budget(task_id, self.intake_budget_nano)
        if task.status is S.AWAITING_BUDGET and budget_nano is not None:
            back_to = (await self.store.list_transitions(task_id))[-1].from_status or S.EXECUTING
            await self._budget.raise_ceiling(
                task_id, budget_nano, back_to, f"budget set to ${nano_to_float(budget_nano):.2f}"
            )
        if task.status is S.RECEIVED and task.persona is None:
            # Stopped while the model classified it: that answer was never recorded.
            task = await self._desk.classify(task)
        elif task.status is S.RECEIVED:
            await self._move(task_id, S.CLASSIFIED, "resumed")
            task = await self.store.get_task(task_id)
        if task.status in (S.CLASSIFIED, S.CLARIFYING) and task.spec is not None:
            # Stopped between saving its plan and announcing it: the plan is kept, not paid for
            # again (a spec is only ever saved by planning).
            await self._move(task_id, S.PLANNED, "resumed with the plan saved before the stop")
        elif task.status in (S.CLASSIFIED, S.CLARIFYING):
            await self.plan(task)
        if (await self.store.get_task(task_id)).status is S.PLANNED:
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
                    markdown = await self._execute(task, spec)
                    if markdown is not None:
                        await self._move(task_id, S.AWAITING_REVIEW, "draft stitched")
                elif status is S.AWAITING_REVIEW:
                    # after a resume the draft in memory died with its process: stitch again
                    markdown = markdown or await self._stitch(task_id, spec)
                    rounds += 1
                    if rounds > MAX_REVIEW_ROUNDS + 1:
                        raise BadInput(f"more than {MAX_REVIEW_ROUNDS} revision rounds")
                    if await self._reviews.review(task, spec, markdown) == "rejected":
                        return await self._result(task_id, "rejected")
                    if (await self.store.get_task(task_id)).status is S.REVISING:
                        markdown = None
                elif status is S.ASSEMBLING:
                    markdown = markdown or await self._stitch(task_id, spec)
                    return await self._closer().close(task_id, spec, markdown)
                elif status is S.AWAITING_BUDGET:
                    if not await self._budget.answer(task_id, {}, already_waiting=True):
                        raise BudgetStop("budget exhausted; the task waits for more budget")
                else:
                    raise BadInput(f"task {task_id} is {status}: nothing to drive")
        except BudgetStop as stop:
            return await self._result(task_id, "budget_exhausted", error=str(stop))
        except TaskRejected as err:
            if task_id in self._budget.declined:
                return await self._result(task_id, "budget_exhausted", error=str(err))
            # A failed module's abort names who chose it, not the host that asked for them.
            actor = err.actor if isinstance(err, ModuleAborted) else self.decider.actor
            await move(self.store, self.bus, task_id, S.ABORTED, actor=actor, reason=str(err))
            return await self._result(task_id, "aborted", error=str(err))
        except BadInput:
            raise
        except Exception as err:  # a failed module or provider: the task fails, the data stays
            log.error("task.failed", task_id=task_id, error=str(err))
            await self._move(task_id, S.FAILED, str(err))
            return await self._result(task_id, "failed", error=str(err))

    async def _execute(self, task: Task, spec: TaskSpec) -> str | None:
        """Run the modules not done and stitch the draft; None when a failed module was retried
        or skipped (the build runs again). Modules a crash left failed are decided on first.
        Raises ``ModuleAborted`` when someone aborts, ``ModuleFailed`` when ``--yes`` does."""
        aborted = await self._failures.settle(task, spec)
        if aborted is not None:
            raise aborted
        notes = await self._reviews.revision_notes(task.id)
        try:
            return await self._gated(task.id, partial(self._runner.execute, spec, notes=notes))
        except ModuleFailed:
            aborted = await self._failures.settle(await self.store.get_task(task.id), spec)
            if aborted is not None:
                raise aborted from None
            return None

    async def _stitch(self, task_id: str, spec: TaskSpec) -> str:
        """The current draft: rebuilt from the store when one was stitched (a resumed task),
        stitched here otherwise."""
        with contextlib.suppress(AgentfirmError):
            return await draft_markdown(self.store, spec)
        _draft, markdown = await self._gated(task_id, partial(self.build.stitch, spec))
        return markdown

    def _closer(self) -> Closer:
        async def execute(spec: TaskSpec, notes: str) -> str:
            return await self._runner.execute(spec, notes=notes)

        return Closer(
            store=self.store,
            bus=self.bus,
            actor=self.decider.actor,
            build=self.build,
            repos=self.repos,
            execute=execute,
            gated=self._gated,
            estimate=self.estimate,
            drain=self._events.drain,
            quality_revision=self.quality_revision,
        )

    async def _gated(self, task_id: str, work: Callable[[], Awaitable[T]]) -> T:
        """Run ``work`` with events flowing; a call the budget refused outside the Build Master's
        own gate is put to the decider here, and the work retried once the ceiling is raised."""
        while True:
            try:
                return await self._events.around(task_id, work())
            except BudgetExceeded as err:
                if not await self._budget.answer(task_id, budget_info(err)):
                    raise BudgetStop(str(err)) from err


__all__ = ["BudgetExceeded", "MasterAgent", "MasterRouter", "Observer", "RunResult"]
