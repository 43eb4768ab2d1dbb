"""The Build Master: executes a task spec's modules as parallel sub-agents, stitches the draft and
judges it against the quality checklist (ARCHITECTURE.md §5).

Progress goes to the task's ``events`` stream; decisions come back on its ``control`` stream
(``budget.adjusted``, ``abort``). Everything it does is persisted as it happens, so a run that dies
resumes without re-running a completed module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

import structlog

from agentfirm.build.assembly import (
    deliverable_markdown,
    judge_messages,
    judge_schema,
    match_verdicts,
    stitch_messages,
)
from agentfirm.build.budget_gate import BudgetGate, BuildAborted, last_control_seq
from agentfirm.build.scheduler import leaf_errors, run_dag, waves
from agentfirm.build.subagent import RouterLike, run_subagent, structured_output
from agentfirm.bus.base import Bus
from agentfirm.domain import Artifact, ModuleRun, ModuleSpec, ModuleStatus, TaskSpec, utcnow
from agentfirm.errors import AgentfirmError, NotFound, ProviderError
from agentfirm.master.estimate import MAX_TOKENS, QUALITY_ID, STITCH_ID
from agentfirm.money import nano_to_float
from agentfirm.output_types import schema_for
from agentfirm.router.base import CallResult
from agentfirm.router.errors import FatalProviderError, ProviderAuthError
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")
DELIVERABLE_ID = "_deliverable"
Sleep = Callable[[float], Awaitable[None]]
# A refused request or a rejected key fails the same way on every attempt.
_NOT_RETRYABLE = (FatalProviderError, ProviderAuthError)


class ModuleFailed(AgentfirmError):
    """A module still failed after its last attempt. Completed modules are kept."""

    def __init__(self, module_id: str, error: str) -> None:
        self.module_id = module_id
        self.error = error
        super().__init__(
            f"module {module_id} failed: {error}",
            hint="retry the task; completed modules are not run again",
        )


class BuildMaster:
    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        router: RouterLike,
        max_concurrency: int = 4,
        max_attempts: int = 2,
        backoff_s: float = 0.5,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_concurrency < 1 or max_attempts < 1:
            raise ValueError("max_concurrency and max_attempts must be at least 1")
        self.store = store
        self.bus = bus
        self.router = router
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._sleep = sleep

    # ------------------------------------------------------------------ execute
    async def execute(
        self, spec: TaskSpec, *, rerun: Collection[str] = (), notes: str = ""
    ) -> None:
        """Run every module that is not already done (plus those in ``rerun``, which get
        ``notes``) as soon as its dependencies are done, ``max_concurrency`` at a time.

        Raises ``ModuleFailed`` when a module fails after ``max_attempts`` (the others running
        are cancelled and left pending), ``BuildAborted`` when an ``abort`` control event
        arrives (at the budget gate or at any other time), and ``BadInput`` for an invalid
        plan. A call refused for budget waits at the gate for ``budget.adjusted``."""
        task_id = spec.task_id
        modules = spec.plan.modules
        runs = await self._prepare_runs(spec, set(rerun))
        artifacts = dict(await self.store.latest_artifacts(task_id))
        done = {
            module_id
            for module_id, run in runs.items()
            if run.status is ModuleStatus.DONE and module_id in artifacts
        }
        await self.bus.publish(
            task_id,
            "build.started",
            {"waves": waves(modules), "skipped": sorted(done), "rerun": sorted(rerun)},
        )

        async def body(gate: BudgetGate) -> None:
            async def run_one(module: ModuleSpec) -> None:
                with structlog.contextvars.bound_contextvars(task_id=task_id, module_id=module.id):
                    await self._run_module(spec, module, runs, artifacts, gate, notes)

            await run_dag(modules, run_one, max_concurrency=self.max_concurrency, done=done)

        try:
            await self._supervised(task_id, body)
        except BaseException:
            # Modules cut short by an abort, a sibling's failure or a shutdown did not fail:
            # they are pending again and run when the build resumes. Done here, after every
            # module task has finished, so no second cancellation can interrupt the write.
            for run in runs.values():
                if run.status is ModuleStatus.RUNNING:
                    await self.store.upsert_module_run(
                        run.model_copy(update={"status": ModuleStatus.PENDING})
                    )
            raise
        await self.bus.publish(task_id, "build.completed", {"modules": [m.id for m in modules]})

    async def _prepare_runs(self, spec: TaskSpec, rerun: set[str]) -> dict[str, ModuleRun]:
        """One ModuleRun row per module; modules to re-run are marked pending first, so a crash
        mid-revision does not leave them looking done."""
        existing = {r.module_id: r for r in await self.store.list_module_runs(spec.task_id)}
        wave_of = {m: n for n, level in enumerate(waves(spec.plan.modules)) for m in level}
        runs: dict[str, ModuleRun] = {}
        for module in spec.plan.modules:
            run = existing.get(module.id)
            if run is None or module.id in rerun:
                base = run or ModuleRun(task_id=spec.task_id, module_id=module.id)
                run = base.model_copy(
                    update={
                        "wave": wave_of[module.id],
                        "tier": module.tier,
                        "depends_on": list(module.depends_on),
                        "status": ModuleStatus.PENDING,
                    }
                )
                await self.store.upsert_module_run(run)
            runs[module.id] = run
        return runs

    async def _run_module(
        self,
        spec: TaskSpec,
        module: ModuleSpec,
        runs: dict[str, ModuleRun],
        artifacts: dict[str, Artifact],
        gate: BudgetGate,
        notes: str,
    ) -> None:
        """Run one module with retries. ``runs[module.id]`` always holds its latest row."""
        task_id = spec.task_id
        upstream = {d: artifacts[d] for d in module.depends_on if d in artifacts}
        run = runs[module.id].model_copy(update={"started_at": utcnow(), "finished_at": None})
        try:
            for attempt in range(1, self.max_attempts + 1):
                run = run.model_copy(
                    update={"status": ModuleStatus.RUNNING, "attempts": run.attempts + 1}
                )
                runs[module.id] = run
                await self.store.upsert_module_run(run)
                await self._publish(
                    task_id,
                    "module.started",
                    module.id,
                    {"attempt": attempt, "tier": module.tier, "wave": run.wave},
                )
                try:
                    artifact, result = await gate.attempt(
                        module.id,
                        lambda: run_subagent(
                            self.router,
                            spec=spec,
                            module=module,
                            upstream=upstream,
                            notes=notes,
                            previous=artifacts.get(module.id),
                        ),
                    )
                except ProviderError as err:
                    if attempt == self.max_attempts or isinstance(err, _NOT_RETRYABLE):
                        raise
                    delay = self.backoff_s * 2 ** (attempt - 1)
                    log.warning("module.retrying", attempt=attempt, error=str(err))
                    await self._publish(
                        task_id,
                        "module.retrying",
                        module.id,
                        {"attempt": attempt, "error": str(err), "delay_s": delay},
                    )
                    await self._sleep(delay)
                    continue
                runs[module.id] = await self._complete(run, artifact, result, artifacts)
                return
        except BuildAborted:
            raise  # not a failure of the module (``execute`` marks it pending)
        except Exception as err:
            error = str(err) or type(err).__name__
            log.error("module.failed", error=error)
            failed = run.model_copy(update={"status": ModuleStatus.FAILED, "finished_at": utcnow()})
            runs[module.id] = failed
            await self.store.upsert_module_run(failed)
            await self._publish(task_id, "module.failed", module.id, {"error": error})
            raise ModuleFailed(module.id, error) from err

    async def _complete(
        self,
        run: ModuleRun,
        artifact: Artifact,
        result: CallResult,
        artifacts: dict[str, Artifact],
    ) -> ModuleRun:
        await self.store.save_artifact(artifact)
        artifacts[artifact.module_id] = artifact
        run = run.model_copy(
            update={
                "status": ModuleStatus.DONE,
                "finished_at": utcnow(),
                "cost_nano": run.cost_nano + result.cost_nano,
                "provider": result.provider,
                "model": result.model,
            }
        )
        await self.store.upsert_module_run(run)
        await self._publish_cost(run.task_id, run.module_id, result)
        await self._publish(
            run.task_id,
            "module.completed",
            run.module_id,
            {
                "cost_usd": nano_to_float(run.cost_nano),
                "provider": result.provider,
                "model": result.model,
                "attempts": run.attempts,
                "simulated": result.simulated,
            },
        )
        return run

    # ------------------------------------------------------------------ stitch and judge
    async def stitch(self, spec: TaskSpec) -> tuple[Artifact, str]:
        """Stitch the latest module outputs into the deliverable (a reasoning-tier call), save it
        as artifact ``_deliverable`` (next version) and publish ``draft.ready``. Returns the
        artifact and its markdown, which starts with the simulation banner when any call of the
        task was simulated. Raises ``AgentfirmError`` when a module has no output yet."""
        task_id = spec.task_id
        latest = await self.store.latest_artifacts(task_id)
        missing = [m.id for m in spec.plan.modules if m.id not in latest]
        if missing:
            raise AgentfirmError(
                f"cannot stitch task {task_id}: no output yet from {', '.join(missing)}",
                hint="run the build first",
            )
        artifacts = {m.id: latest[m.id] for m in spec.plan.modules}
        result = await self._reasoning_call(
            spec, STITCH_ID, stitch_messages(spec, artifacts), schema_for("deliverable")
        )
        content = structured_output(result, module_id=STITCH_ID)
        ledger = await self.store.list_ledger(task_id)
        simulated = result.simulated or any(entry.simulated for entry in ledger)
        markdown = deliverable_markdown(spec, content, artifacts, simulated=simulated)
        previous = latest.get(DELIVERABLE_ID)
        artifact = Artifact(
            task_id=task_id,
            module_id=DELIVERABLE_ID,
            version=previous.version + 1 if previous else 1,
            output_type="deliverable",
            content=content,
        )
        await self.store.save_artifact(artifact)
        await self._publish(
            task_id,
            "draft.ready",
            DELIVERABLE_ID,
            {
                "version": artifact.version,
                "title": str(content.get("title", "")),
                "modules": list(artifacts),
                "simulated": simulated,
            },
        )
        return artifact, markdown

    async def judge(self, spec: TaskSpec, deliverable_md: str) -> dict[str, Any]:
        """Judge every checklist item pass/fail with evidence (one reasoning-tier call; none when
        the checklist is empty). Returns ``{items: [{item, passed, evidence}], passed, failed,
        simulated}`` with exactly one item per checklist entry, in order; items the model left out
        fail with evidence ``"not judged"``. Publishes ``quality.judged``."""
        task_id = spec.task_id
        checklist = spec.quality_checklist
        items: list[dict[str, Any]] = []
        simulated = False
        if checklist:
            result = await self._reasoning_call(
                spec, QUALITY_ID, judge_messages(spec, deliverable_md), judge_schema(checklist)
            )
            raw = structured_output(result, module_id=QUALITY_ID).get("items")
            judged = [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []
            items = match_verdicts(checklist, judged)
            simulated = result.simulated
            previous = (await self.store.latest_artifacts(task_id)).get(QUALITY_ID)
            await self.store.save_artifact(
                Artifact(
                    task_id=task_id,
                    module_id=QUALITY_ID,
                    version=previous.version + 1 if previous else 1,
                    output_type="quality_report",
                    content={"items": items},
                )
            )
        passed = sum(1 for item in items if item["passed"])
        report: dict[str, Any] = {
            "items": items,
            "passed": passed,
            "failed": len(items) - passed,
            "simulated": simulated,
        }
        await self._publish(task_id, "quality.judged", QUALITY_ID, report)
        return report

    async def _reasoning_call(
        self, spec: TaskSpec, call_id: str, messages: list[Any], schema: dict[str, Any]
    ) -> CallResult:
        """One reasoning-tier call through the budget gate, with the module retry policy."""
        task_id = spec.task_id

        async def body(gate: BudgetGate) -> CallResult:
            for attempt in range(1, self.max_attempts + 1):
                try:
                    return await gate.attempt(
                        call_id,
                        lambda: self.router.call(
                            tier="reasoning",
                            messages=messages,
                            task_id=task_id,
                            module_id=call_id,
                            output_schema=schema,
                            max_tokens=MAX_TOKENS["reasoning"],
                        ),
                    )
                except ProviderError as err:
                    if attempt == self.max_attempts or isinstance(err, _NOT_RETRYABLE):
                        raise
                    delay = self.backoff_s * 2 ** (attempt - 1)
                    await self._publish(
                        task_id,
                        "module.retrying",
                        call_id,
                        {"attempt": attempt, "error": str(err), "delay_s": delay},
                    )
                    await self._sleep(delay)
            raise AssertionError("unreachable: the last attempt returns or raises")

        with structlog.contextvars.bound_contextvars(task_id=task_id, module_id=call_id):
            result = await self._supervised(task_id, body)
        await self._publish_cost(task_id, call_id, result)
        return result

    # ------------------------------------------------------------------ plumbing
    async def _supervised(self, task_id: str, body: Callable[[BudgetGate], Awaitable[T]]) -> T:
        """Run ``body`` with a budget gate fed by the task's control stream. An ``abort`` control
        event cancels the body, publishes ``build.aborted`` and raises ``BuildAborted``; any other
        error of the body is re-raised on its own (no ``ExceptionGroup``)."""
        gate = BudgetGate(store=self.store, bus=self.bus, task_id=task_id)
        after_seq = await last_control_seq(self.bus, task_id)
        try:
            async with asyncio.TaskGroup() as group:
                watcher = group.create_task(gate.watch(after_seq=after_seq), name="control-watch")
                result = await body(gate)
                watcher.cancel()
        except BaseExceptionGroup as errors:
            leaves = leaf_errors(errors)
            aborted = [e for e in leaves if isinstance(e, BuildAborted)]
            if aborted:
                log.warning("build.aborted", task_id=task_id, reason=aborted[0].reason)
                await self.bus.publish(task_id, "build.aborted", {"reason": aborted[0].reason})
                raise aborted[0] from None
            raise leaves[0] from None
        return result

    async def _publish(
        self, task_id: str, type_: str, module_id: str, payload: dict[str, Any]
    ) -> None:
        await self.bus.publish(task_id, type_, payload, module_id=module_id)

    async def _publish_cost(self, task_id: str, module_id: str, result: CallResult) -> None:
        await self._publish(
            task_id,
            "cost.updated",
            module_id,
            {
                "call_id": result.call_id,
                "module_id": module_id,
                "tier": result.tier,
                "provider": result.provider,
                "model": result.model,
                "cost_usd": nano_to_float(result.cost_nano),
                "simulated": result.simulated,
                "spent_usd": nano_to_float(await self._spent_nano(task_id)),
            },
        )

    async def _spent_nano(self, task_id: str) -> int:
        try:
            return (await self.store.get_budget(task_id)).spent_nano
        except NotFound:
            return sum(entry.cost_nano for entry in await self.store.list_ledger(task_id))
