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
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import structlog

from agentfirm.build_master.master import BuildMaster
from agentfirm.build_master.module_runner import ModuleFailed
from agentfirm.bus.base import Bus
from agentfirm.domain.costs import summarize
from agentfirm.domain.models import Task, TaskSpec, TaskStatus
from agentfirm.domain.policy import TaskPolicy
from agentfirm.domain.tools import ChangingTools, ToolConsent, tool_consents
from agentfirm.errors import (
    AgentfirmError,
    BadInput,
    BudgetExceeded,
    NotFound,
    TaskRejected,
    disk_full,
)
from agentfirm.handoff.repos import RepoBackend
from agentfirm.master.abort_watch import AbortWatch
from agentfirm.master.budgeting import BudgetPrompt, BudgetStop, budget_info
from agentfirm.master.close import Closer
from agentfirm.master.decisions import Decider, tool_consent
from agentfirm.master.estimate import DEFAULT_MAX_TURNS, Estimate, Pricing, estimate_plan
from agentfirm.master.events import EventPump, Observer
from agentfirm.master.failures import FailureHandler, ModuleAborted
from agentfirm.master.intake import IntakeDesk, MasterRouter
from agentfirm.master.result import RunResult, result_of
from agentfirm.master.review import Reviewer
from agentfirm.master.task_lock import TaskLocks
from agentfirm.master.task_repos import TaskRepos
from agentfirm.master.tool_check import ToolProbe, check_tools, unavailable_tools
from agentfirm.master.transitions import check_not_ended, move
from agentfirm.money import nano_to_float, usd_to_nano
from agentfirm.personas.library import PersonaLibrary
from agentfirm.runs.base import Runner, draft_markdown
from agentfirm.runs.inproc import InprocRunner
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

S = TaskStatus
MAX_REVIEW_ROUNDS = 3
T = TypeVar("T")


class Reconcile(Protocol):
    """``Router.reconcile``'s shape."""

    def __call__(self, task_id: str, *, last: bool = ...) -> Awaitable[object]: ...


PlanShown = Callable[[Task, TaskSpec, Estimate, int, Sequence[ToolConsent]], None]
"""Sees a plan (with its estimate, the proposed budget and what becomes of its tools that may
change things) before it is put to the decider."""


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
    """The ceiling a new task's intake reserves against when no budget was given (the intake
    cap, ``settings.intake_cap_usd``)."""
    quality_revision: bool = True
    """Whether failing quality checklist items get one automatic revision round."""
    redact: Callable[[str], str] | None = None
    """Scrubs secrets (registered values, known key shapes) from what a human typed — the
    request, answers, review notes — before it is written anywhere; ``None``: kept as typed."""
    notebook_requirement: str = ""
    """How task notebooks install agentfirm instead of the repo's wheel (a setting)."""
    abort_wait_s: float | None = None
    """How long a build is waited for once its task is ``aborting`` (a cancel it did not answer
    in time) before the task is ended ``aborted`` here (``AbortWatch``); None: for ever."""
    reconcile: Reconcile | None = None
    """Books a task's "≤" rows again at what their providers recorded (``Router.reconcile``):
    when a task is taken over and when its drive ends. ``None``: they stay "≤"."""
    _budget: BudgetPrompt = field(init=False)
    _events: EventPump = field(init=False)
    _reviews: Reviewer = field(init=False)
    _failures: FailureHandler = field(init=False)
    _desk: IntakeDesk = field(init=False)
    _repos: TaskRepos = field(init=False)

    def __post_init__(self) -> None:
        self._budget = BudgetPrompt(self.store, self.bus, self.decider)
        self._events = EventPump(self.store, self.bus, self.observer, self._budget.answer)
        self._reviews = Reviewer(self.store, self.bus, self.decider, self.redact)
        self._failures = FailureHandler(self.store, self.bus, self.decider)
        self._repos = TaskRepos(
            store=self.store,
            bus=self.bus,
            repos=self.repos,
            personas=self.personas,
            attachments=getattr(self.build, "attachments", None),
            requirement=self.notebook_requirement,
            redact=self.redact,
        )
        self._desk = IntakeDesk(
            store=self.store,
            bus=self.bus,
            decider=self.decider,
            personas=self.personas,
            locks=self.locks,
            router=self.router,
            intake_budget_nano=self.intake_budget_nano,
            attachments=getattr(self.build, "attachments", None),
            redact=self.redact,
        )

    async def _move(self, task_id: str, to: TaskStatus, reason: str = "") -> None:
        await move(self.store, self.bus, task_id, to, actor=self.decider.actor, reason=reason)

    async def _result(self, task_id: str, status: str, *, error: str | None = None) -> RunResult:
        return await result_of(self.store, task_id, status, error=error)

    # ------------------------------------------------------------------ intake → plan
    async def intake(
        self,
        request: str,
        *,
        persona: str | None = None,
        attachments: Sequence[Path] = (),
        budget_nano: int | None = None,
        policy: TaskPolicy | None = None,
        on_created: Callable[[str], None] = lambda task_id: None,
    ) -> Task:
        """Create the task and classify it (see ``IntakeDesk.intake``)."""
        return await self._desk.intake(
            request,
            persona=persona,
            attachments=attachments,
            budget_nano=budget_nano,
            policy=policy,
            on_created=on_created,
        )

    def estimate(self, spec: TaskSpec) -> Estimate:
        return estimate_plan(
            spec.plan,
            self.pricing,
            checklist_items=len(spec.quality_checklist),
            default_max_turns=getattr(self.build, "max_turns", DEFAULT_MAX_TURNS),
            stitch_tokens=getattr(self.build, "stitch_tokens", None),
        )

    async def plan(self, task: Task) -> tuple[TaskSpec, Estimate]:
        """Clarify if the request is ambiguous (asking the decider, or recording assumptions),
        adapt the persona's template to it, and leave the task awaiting plan approval."""
        spec = await self._desk.plan(task)
        return spec, self.estimate(spec)

    async def unavailable_tools(self, names: Iterable[str]) -> list[str]:
        """Why tools of ``names`` cannot be used, one line each; empty when all can be."""
        return await unavailable_tools(self._tools, names)

    @property
    def _tools(self) -> ToolProbe | None:
        tools: ToolProbe | None = getattr(self.build, "tools", None)
        return tools

    # ------------------------------------------------------------------ the whole run
    async def run(
        self,
        request: str,
        *,
        persona: str | None = None,
        budget_usd: Any = None,
        attachments: Sequence[Path] = (),
        policy: TaskPolicy | None = None,
    ) -> RunResult:
        """intake → plan → approval → execution → review → close, in one call."""
        given = usd_to_nano(budget_usd) if budget_usd is not None else None
        if given is not None:
            policy = (policy or TaskPolicy()).model_copy(update={"budget_nano": given})
        task = await self.intake(
            request, persona=persona, attachments=attachments, budget_nano=given, policy=policy
        )
        return await self.drive(task.id)

    async def approve_and_execute(
        self,
        task_id: str,
        budget_nano: int,
        *,
        tools_checked: ChangingTools | None = None,
        on_planned: PlanShown | None = None,
    ) -> RunResult:
        """Put the plan of a task awaiting approval to the decider at ``budget_nano``; on approval
        hand it off and run it through review to the end. Not put while a tool the plan needs
        cannot be used (``ConfigError``), unless ``tools_checked``: just found usable, with
        these tools that may change things. The question says what becomes of each of those
        (denied under ``--yes`` unless allowed, or asked before each call)."""
        self.locks.acquire(task_id)
        task = await self.store.get_task(task_id)
        if task.status is not S.AWAITING_PLAN_APPROVAL or task.spec is None:
            raise BadInput(
                f"task {task_id} is {task.status}, not awaiting plan approval",
                hint="see `agentfirm tasks show " + task_id + "`",
            )
        spec = task.spec
        # Planned while a server worked (or with `agentfirm plan`, which only warns): the plan
        # is not put to anyone while a tool it needs cannot be used.
        changing = tools_checked
        if changing is None:
            names = (n for m in spec.plan.modules for n in m.tools)
            changing = await check_tools(
                self._tools, task_id, names, before="its plan was approved", then="approve"
            )
        decides_alone, allowed = tool_consent(self.decider, task.policy)
        consents = tool_consents(
            ((m.id, m.tools) for m in spec.plan.modules),
            changing,
            decides_alone=decides_alone,
            allowed=allowed,
        )
        estimate = self.estimate(spec)
        if on_planned is not None:
            on_planned(task, spec, estimate, budget_nano, consents)
        decision = await self.decider.approve_plan(
            task, spec.plan, estimate, budget_nano, tools=consents
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
        """``drive`` a task that stopped before its end (a crash, Ctrl-C, or budget)."""
        return await self.drive(task_id, budget_nano=budget_nano)

    async def drive(
        self,
        task_id: str,
        *,
        budget_nano: int | None = None,
        on_planned: PlanShown | None = None,
    ) -> RunResult:
        """Drive a task from the state its row holds to its end, or until it waits for a human
        who is not there: the one run sequence (classify, plan, approve, hand off, execute,
        review, close) that every host — the CLI in-process, the daemon, ``resume`` — follows,
        whether the task was just created by ``intake`` or picked up after a crash.

        Completed modules are not run again; reservations a dead process left behind are
        released first, each booked at its reservation (``cancelled``, an upper bound: the
        request may have reached the provider, which bills it). ``budget_nano``: the ceiling
        proposed at plan approval (default: the task policy's, else the plan's suggested
        budget) and, for a task stopped for budget, its new ceiling. ``on_planned`` sees the
        plan before it is put to the decider."""
        self.locks.acquire(task_id)
        task = await self.store.get_task(task_id)
        check_not_ended(task, "resume")
        released = await self.store.release_reservations(task_id)
        if released:
            log.warning("task.reservations_released", task_id=task_id, count=released)
        await self._reconcile(task_id)
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
        checked: ChangingTools | None = None  # the persona's tools just found usable
        if task.status in (S.CLASSIFIED, S.CLARIFYING) and task.spec is not None:
            # Stopped between saving its plan and announcing it: the plan is kept, not paid for
            # again (a spec is only ever saved by planning).
            await self._move(task_id, S.PLANNED, "resumed with the plan saved before the stop")
        elif task.status in (S.CLASSIFIED, S.CLARIFYING):
            if task.persona is not None:
                modules = self.personas.get(task.persona).modules
                names = (n for m in modules for n in m.tools)
                checked = await check_tools(
                    self._tools, task_id, names, before="planning", then="resume"
                )
            await self.plan(task)
        if (await self.store.get_task(task_id)).status is S.PLANNED:
            await self._move(task_id, S.AWAITING_PLAN_APPROVAL, "resumed")
        task = await self.store.get_task(task_id)
        if task.status is S.AWAITING_PLAN_APPROVAL:
            spec = task.spec
            assert spec is not None  # planned tasks always carry their spec
            estimate = self.estimate(spec)
            proposed = budget_nano or task.policy.budget_nano or estimate.suggested_budget_nano()
            return await self.approve_and_execute(
                task_id, proposed, tools_checked=checked, on_planned=on_planned
            )
        if task.spec is None:
            raise BadInput(f"task {task_id} has no plan to resume from")
        if task.status is S.APPROVED:
            return await self._hand_off(task_id, task.spec)
        return await self._drive(task_id, task.spec)

    async def _hand_off(self, task_id: str, spec: TaskSpec) -> RunResult:
        """Publish the task repo (spec, persona, notebook) in one commit, then drive."""
        launch_url = await self._repos.publish(task_id, spec)
        where = f"runner {self._runner.name}"
        if launch_url:
            where += f"; launch {launch_url}"
        await self._move(task_id, S.HANDED_OFF, where)
        return await self._drive(task_id, spec)

    @property
    def _runner(self) -> Runner:
        runner = self.runner or InprocRunner(self.build)
        if self.abort_wait_s is None:
            return runner
        heard = self._events.aborting  # the pump the build runs in reads its transitions
        return AbortWatch(runner, self.store, within_s=self.abort_wait_s, heard=heard)

    async def _reconcile(self, task_id: str, *, last: bool = False) -> bool:
        """Make what "≤" rows the providers' records can exact; a failure only leaves them
        "≤" (the task goes on). ``last``: the drive ends here. Whether any row changed."""
        if self.reconcile is None:
            return False
        try:
            done = await self.reconcile(task_id, last=last)
        except AgentfirmError as err:
            log.warning("ledger.reconcile_failed", task_id=task_id, error=str(err))
            return False
        return bool(done)

    async def _drive(self, task_id: str, spec: TaskSpec) -> RunResult:
        """``_advance``, then the calls its end left "≤" (cut off past their grace) are looked
        up in their providers' records."""
        result = await self._advance(task_id, spec)
        if not await self._reconcile(task_id, last=True):
            return result
        # What the result says it cost is the ledger's after the rows were booked again.
        cost = summarize(await self.store.list_ledger(task_id))
        return dataclasses.replace(result, cost=cost)

    async def _advance(self, task_id: str, spec: TaskSpec) -> RunResult:
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
                    await self._repos.location(task_id, spec)
                    markdown = await self._execute(task, spec)
                    if (await self.store.get_task(task_id)).status is S.ABORTING:
                        continue  # cancelled meanwhile: ended above
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
                elif status is S.ABORTING:
                    # Cancelled while its build ran elsewhere: whatever the build did since, the
                    # cancel stands.
                    raise TaskRejected(f"task {task_id} was cancelled")
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
            full = disk_full(err)
            if full is not None:  # not the task's fault: it stops here and resumes later
                log.error("task.stopped_disk_full", task_id=task_id, path=full.path)
                raise full.for_task(task_id) from None
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
            task_repo=self._repos.location,
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
