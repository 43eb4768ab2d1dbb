"""Running one module: its attempts (retried with backoff), its research escalations, and its row,
artifact, costs and events kept current as it goes.

One ``ModuleRunner`` serves one ``BuildMaster.execute`` call: it holds what the modules of that
run share (the spec, the latest rows and artifacts, the budget gate, the revision notes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any, TypeVar

import structlog

from agentfirm.build_master.agent_loop import Consent, approver, deny_all
from agentfirm.build_master.budget_gate import BudgetGate, BuildAborted
from agentfirm.build_master.research import ResearchAgent, ResearchNotes, research_id
from agentfirm.build_master.subagent import (
    Context,
    LoopSetup,
    SubagentResult,
    run_subagent,
)
from agentfirm.bus.base import Bus
from agentfirm.domain.models import Artifact, ModuleRun, ModuleSpec, ModuleStatus, TaskSpec, utcnow
from agentfirm.errors import AgentfirmError, DiskFull, ProviderError
from agentfirm.money import nano_to_float
from agentfirm.router.base import CallResult, RouterLike
from agentfirm.router.errors import FatalProviderError, ProviderAuthError
from agentfirm.store.base import Store
from agentfirm.tools.catalog import Toolset

log = structlog.get_logger(__name__)
T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
# A refused request or a rejected key fails the same way on every attempt.
NOT_RETRYABLE = (FatalProviderError, ProviderAuthError)
_MAX_EVENT_NOTES = 4000
COMPLETED = "module.completed"


class ModuleFailed(AgentfirmError):
    """A module still failed after its last attempt. Completed modules are kept."""

    def __init__(self, module_id: str, error: str) -> None:
        self.module_id = module_id
        self.error = error
        super().__init__(
            f"module {module_id} failed: {error}",
            hint="retry the task; completed modules are not run again",
        )


@dataclass(frozen=True)
class Policy:
    """How hard to try: attempts per module (and per reasoning call), backoff between them, and
    research escalations per module."""

    max_attempts: int = 2
    backoff_s: float = 0.5
    max_escalations: int = 1
    sleep: Sleep = asyncio.sleep


async def publish_cost(
    store: Store, bus: Bus, task_id: str, module_id: str, result: CallResult
) -> None:
    """A ``cost.updated`` event for one call, with the task's spend so far."""
    try:
        spent = (await store.get_budget(task_id)).spent_nano
    except AgentfirmError:
        spent = sum(entry.cost_nano for entry in await store.list_ledger(task_id))
    await bus.publish(
        task_id,
        "cost.updated",
        {
            "call_id": result.call_id,
            "module_id": module_id,
            "tier": result.tier,
            "provider": result.provider,
            "model": result.model,
            "cost_usd": nano_to_float(result.cost_nano),
            "simulated": result.simulated,
            "spent_usd": nano_to_float(spent),
        },
        module_id=module_id,
    )


async def retrying(
    bus: Bus,
    task_id: str,
    call_id: str,
    policy: Policy,
    gate: BudgetGate,
    call: Callable[[], Awaitable[T]],
) -> T:
    """``call`` through the budget gate, retried with exponential backoff on retryable provider
    errors (``module.retrying`` each time) up to ``policy.max_attempts``."""
    for attempt in range(1, policy.max_attempts + 1):
        try:
            return await gate.attempt(call_id, call)
        except ProviderError as err:
            if attempt == policy.max_attempts or isinstance(err, NOT_RETRYABLE):
                raise
            delay = policy.backoff_s * 2 ** (attempt - 1)
            log.warning("call.retrying", attempt=attempt, error=str(err))
            await bus.publish(
                task_id,
                "module.retrying",
                {"attempt": attempt, "error": str(err), "delay_s": delay},
                module_id=call_id,
            )
            await policy.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def completed_payload(run: ModuleRun, *, simulated: bool, research_rounds: int) -> dict[str, Any]:
    """What ``module.completed`` says of a module whose row ``run`` is done."""
    return {
        "cost_usd": nano_to_float(run.cost_nano),
        "provider": run.provider,
        "model": run.model,
        "attempts": run.attempts,
        "simulated": simulated,
        "research_rounds": research_rounds,
    }


async def announce_completed(store: Store, bus: Bus, task_id: str, done: list[ModuleRun]) -> None:
    """Publish ``module.completed`` for each ``done`` row whose completion is not on the bus.
    Completing is two writes (the output with its done row, then the event): a process stopped
    between them leaves a module front ends, which learn of progress only from events, show
    running for ever. A completion is told apart by its ``attempts``, which keep counting across
    runs, so a module completed again by a revision is announced once per completion."""
    if not done:
        return
    events = await bus.replay(task_id)
    announced = {(e.module_id, e.payload.get("attempts")) for e in events if e.type == COMPLETED}
    lost = [run for run in done if (run.module_id, run.attempts) not in announced]
    if not lost:
        return
    # research rounds of the run the stop cut off: those since its build started
    rounds: dict[str | None, int] = {}
    for event in events:
        if event.type == "build.started":
            rounds.clear()
        elif event.type == "research.finished":
            rounds[event.module_id] = rounds.get(event.module_id, 0) + 1
    ledger = await store.list_ledger(task_id)
    for run in lost:
        calls = [e for e in ledger if e.module_id == run.module_id and e.outcome == "ok"]
        simulated = calls[-1].simulated if calls else False
        payload = completed_payload(
            run, simulated=simulated, research_rounds=rounds.get(run.module_id, 0)
        )
        await bus.publish(task_id, COMPLETED, payload, module_id=run.module_id)
        log.warning("module.completion_announced", task_id=task_id, module_id=run.module_id)


@dataclass
class ModuleRunner:
    store: Store
    bus: Bus
    router: RouterLike
    research: ResearchAgent | None
    """None, or research not available for the task: sub-agents are never offered it."""
    policy: Policy
    spec: TaskSpec
    runs: dict[str, ModuleRun]
    """The latest row of every module; kept current."""
    artifacts: dict[str, Artifact]
    """The latest output of every module done (skipped modules' left out)."""
    gate: BudgetGate
    notes: str = ""
    skipped: Collection[str] = frozenset()
    toolset: Toolset | None = None
    """The run's tools (None: no module has any)."""
    max_turns: int = 6
    """Agent-loop turns of a module whose persona does not say."""
    redact: Callable[[str], str] = lambda s: s
    consent: Consent = deny_all
    _research_md: dict[str, list[str]] = field(default_factory=dict)
    _spent: dict[str, int] = field(default_factory=dict)
    """What each module's calls cost in this run, failed attempts' successful calls included."""

    async def run(self, module: ModuleSpec) -> None:
        """Run ``module`` until it is done: up to ``max_attempts`` attempts, each with up to
        ``max_escalations`` research rounds. Raises ``ModuleFailed`` after the last attempt and
        ``BuildAborted`` as the gate does."""
        run = self.runs[module.id].model_copy(update={"started_at": utcnow(), "finished_at": None})
        try:
            for attempt in range(1, self.policy.max_attempts + 1):
                run = run.model_copy(
                    update={"status": ModuleStatus.RUNNING, "attempts": run.attempts + 1}
                )
                self.runs[module.id] = run
                await self.store.upsert_module_run(run)
                # The module's attempts so far, across runs (a retry after its failed-module
                # question keeps counting): what its row, and every front end, shows.
                await self._publish(
                    "module.started",
                    module.id,
                    {"attempt": run.attempts, "tier": module.tier, "wave": run.wave},
                )
                try:
                    done = await self._attempt(module)
                except ProviderError as err:
                    if attempt == self.policy.max_attempts or isinstance(err, NOT_RETRYABLE):
                        raise
                    delay = self.policy.backoff_s * 2 ** (attempt - 1)
                    log.warning("module.retrying", attempt=attempt, error=str(err))
                    await self._publish(
                        "module.retrying",
                        module.id,
                        {"attempt": run.attempts, "error": str(err), "delay_s": delay},
                    )
                    await self.policy.sleep(delay)
                    continue
                self.runs[module.id] = await self._complete(run, done)
                return
        except (BuildAborted, DiskFull):
            raise  # not a failure of the module (``execute`` marks it pending)
        except Exception as err:
            error = str(err) or type(err).__name__
            log.error("module.failed", error=error)
            failed = run.model_copy(
                update={
                    "status": ModuleStatus.FAILED,
                    "finished_at": utcnow(),
                    "cost_nano": run.cost_nano + self._spent.pop(module.id, 0),
                }
            )
            self.runs[module.id] = failed
            await self.store.upsert_module_run(failed)
            await self._publish(
                "module.failed", module.id, {"error": error, "attempts": failed.attempts}
            )
            raise ModuleFailed(module.id, error) from err

    async def _attempt(self, module: ModuleSpec) -> SubagentResult:
        """One attempt: the sub-agent, and while it asks (and may still), research and again.
        Research notes found in an earlier attempt are kept."""
        notes_md = self._research_md.setdefault(module.id, [])
        while True:
            offer = self.research is not None and len(notes_md) < self.policy.max_escalations
            context = Context(
                notes=self.notes,
                previous=self.artifacts.get(module.id),
                research="\n\n".join(notes_md),
                offer_research=offer,
                skipped=tuple(m for m in self._deps(module) if m.id in self.skipped),
            )
            upstream = {d: self.artifacts[d] for d in module.depends_on if d in self.artifacts}
            answer = await self.gate.attempt(
                module.id, partial(self._subagent, module, upstream, context)
            )
            self._add_cost(module.id, answer.call.cost_nano)
            await publish_cost(self.store, self.bus, self.spec.task_id, module.id, answer.call)
            if not answer.questions or self.research is None:
                return answer
            notes = await self._research(module, answer.questions, len(notes_md) + 1)
            notes_md.append(notes.markdown())

    async def _subagent(
        self, module: ModuleSpec, upstream: dict[str, Artifact], context: Context
    ) -> SubagentResult:
        loop = None
        if self.toolset is not None and module.tools:
            loop = LoopSetup(
                tools=self.toolset.for_module(module.tools),
                max_turns=module.max_turns or self.max_turns,
                bus=self.bus,
                redact=self.redact,
                approve=approver(self.consent, self.spec.task_id, module.id, self.redact),
            )
        return await run_subagent(
            self.router,
            spec=self.spec,
            module=module,
            upstream=upstream,
            context=context,
            loop=loop,
        )

    def _add_cost(self, module_id: str, cost_nano: int) -> None:
        self._spent[module_id] = self._spent.get(module_id, 0) + cost_nano

    async def _research(
        self, module: ModuleSpec, questions: list[str], round_: int
    ) -> ResearchNotes:
        assert self.research is not None
        research = self.research
        call_id = research_id(module.id)
        await self._publish(
            "research.started", module.id, {"round": round_, "questions": questions}
        )
        notes, result = await retrying(
            self.bus,
            self.spec.task_id,
            call_id,
            self.policy,
            self.gate,
            lambda: research.research(self.spec, module, questions),
        )
        cost = 0
        if result is not None:
            cost = result.cost_nano
            self._add_cost(module.id, cost)
            await publish_cost(self.store, self.bus, self.spec.task_id, call_id, result)
        await self._publish(
            "research.finished",
            module.id,
            {
                "round": round_,
                "questions": questions,
                "sources": notes.sources,
                "web_search": notes.web_search,
                "called": result is not None,
                "cost_usd": nano_to_float(cost),
                "notes": notes.markdown()[:_MAX_EVENT_NOTES],
            },
        )
        return notes

    def _deps(self, module: ModuleSpec) -> list[ModuleSpec]:
        by_id = self._modules_by_id
        return [by_id[d] for d in module.depends_on if d in by_id]

    @cached_property
    def _modules_by_id(self) -> dict[str, ModuleSpec]:
        # Built once: per module it made a build quadratic in the plan's size.
        return {m.id: m for m in self.spec.plan.modules}

    async def _complete(self, run: ModuleRun, done: SubagentResult) -> ModuleRun:
        result = done.call
        cost = self._spent.pop(run.module_id, 0)
        run = run.model_copy(
            update={
                "status": ModuleStatus.DONE,
                "finished_at": utcnow(),
                "cost_nano": run.cost_nano + cost,
                "provider": result.provider,
                "model": result.model,
            }
        )
        # One transaction: an output saved under a row still saying running would be redone.
        await self.store.save_artifact(done.artifact, run=run)
        # Kept current before the event: a build stopped while publishing it must not put the
        # done row back to pending (``execute`` resets the rows it holds as running).
        self.runs[run.module_id] = run
        self.artifacts[done.artifact.module_id] = done.artifact
        rounds = len(self._research_md.get(run.module_id, []))
        await self._publish(
            COMPLETED,
            run.module_id,
            completed_payload(run, simulated=result.simulated, research_rounds=rounds),
        )
        return run

    async def _publish(self, type_: str, module_id: str, payload: dict[str, Any]) -> None:
        await self.bus.publish(self.spec.task_id, type_, payload, module_id=module_id)
