"""The Build Master: executes a task spec's modules as parallel sub-agents, stitches the draft and
judges it against the quality checklist (ARCHITECTURE.md §5).

Progress goes to the task's ``events`` stream; decisions come back on its ``control`` stream
(``budget.adjusted``, ``abort``). Everything it does is persisted as it happens, so a run that dies
resumes without re-running a completed module. ``module_runner.py`` runs each module (retries,
research escalations); this module schedules them, stitches and judges.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import structlog

from agentfirm.build_master.agent_loop import Consent, deny_all
from agentfirm.build_master.assembly import (
    deliverable_markdown,
    judge_messages,
    judge_schema,
    match_verdicts,
    stitch_messages,
)
from agentfirm.build_master.attachments import SEARCH_SPEC, Attachments, SearchAttachments
from agentfirm.build_master.budget_gate import BudgetGate, BuildAborted, last_control_seq
from agentfirm.build_master.module_runner import (
    ModuleFailed,
    ModuleRunner,
    Policy,
    Sleep,
    announce_completed,
    publish_cost,
    retrying,
)
from agentfirm.build_master.research import ResearchAgent
from agentfirm.build_master.scheduler import leaf_errors, run_dag
from agentfirm.build_master.stitching import (
    fits,
    groups,
    part_artifact,
    part_messages,
    stitch_bound,
)
from agentfirm.bus.base import Bus
from agentfirm.domain.calls import DELIVERABLE_ID, MAX_TOKENS, QUALITY_ID, STITCH_ID
from agentfirm.domain.graph import waves
from agentfirm.domain.models import Artifact, ModuleRun, ModuleSpec, ModuleStatus, TaskSpec, Tier
from agentfirm.domain.tools import stopped_for_tools
from agentfirm.errors import AgentfirmError
from agentfirm.outputs.types import schema_for
from agentfirm.router.base import CallResult, RouterLike, structured_output
from agentfirm.store.base import Store
from agentfirm.tools.base import Tool, ToolError
from agentfirm.tools.catalog import ToolCatalog, Toolset, catalog_from_settings

if TYPE_CHECKING:
    from agentfirm.settings import Settings

log = structlog.get_logger(__name__)
BUILD_STEP = "its modules ran"
"""Where a build that cannot have its tools stops: before any module spends."""
T = TypeVar("T")
ATTACHMENTS_DIR = "attachments"
"""The attachment library's directory under the data dir."""

__all__ = ["BuildMaster", "ModuleFailed"]


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
        attachments: Attachments | None = None,
        research_tier: Tier = "execution",
        max_escalations: int = 1,
        tools: ToolCatalog | None = None,
        max_turns: int = 6,
        redact: Callable[[str], str] = lambda s: s,
        consent: Consent = deny_all,
        stitch_tokens: int | None = None,
    ) -> None:
        """``attachments``: the task documents the research agent searches (None: none);
        ``max_escalations``: research rounds one module may ask for (0: never offered);
        ``tools``: what modules with tools may use (None: only the builtins); ``max_turns``:
        agent-loop turns of a module whose persona does not say; ``consent``: asked before a tool
        with side effects runs (the Master Agent sets its decider's ``approve_tool``);
        ``stitch_tokens``: the most input one stitch call, or the quality judgement, may take
        (None: a share of the reasoning model's context window, see ``stitching``)."""
        if max_concurrency < 1 or max_attempts < 1 or max_escalations < 0:
            raise ValueError(
                "max_concurrency and max_attempts must be at least 1, max_escalations at least 0"
            )
        self.store = store
        self.bus = bus
        self.router = router
        self.max_concurrency = max_concurrency
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.attachments = attachments
        self.tools = tools or ToolCatalog()
        self.max_turns = max_turns
        self.redact = redact
        self.consent = consent
        self.stitch_tokens = stitch_tokens or stitch_bound(_context_window(router))
        self.policy = Policy(max_attempts, backoff_s, max_escalations, sleep)
        self.research = (
            ResearchAgent(router, attachments=attachments, tier=research_tier)
            if max_escalations
            else None
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: Store,
        bus: Bus,
        router: RouterLike,
        redact: Callable[[str], str] = lambda s: s,
    ) -> BuildMaster:
        """The Build Master ``settings`` describe: concurrency, research (tier, escalations),
        the attachment library under the data dir, and the tools (``mcp.json``, ``max_turns``).
        Raises ``ConfigError`` when ``mcp.json`` is not valid."""
        return cls(
            tools=catalog_from_settings(settings),
            max_turns=settings.max_turns,
            redact=redact,
            store=store,
            bus=bus,
            router=router,
            max_concurrency=settings.max_concurrency,
            attachments=Attachments(settings.paths.data_dir / ATTACHMENTS_DIR),
            research_tier=settings.research_tier,
            max_escalations=settings.research_escalations,
        )

    # ------------------------------------------------------------------ execute
    async def execute(
        self, spec: TaskSpec, *, rerun: Collection[str] = (), notes: str = ""
    ) -> None:
        """Run every module that is not already done or skipped (plus those in ``rerun``, which
        get ``notes``) as soon as its dependencies are done, ``max_concurrency`` at a time.

        A module that fails after ``max_attempts`` stops only its descendants: the rest of the
        graph still runs, then ``ModuleFailed`` is raised (for the first failure; every failed
        module's row says ``failed``). ``BuildAborted`` is raised when an ``abort`` control event
        arrives (at the budget gate or at any other time; everything running is cancelled), and
        ``BadInput`` for an invalid plan. A call refused for budget waits at the gate for
        ``budget.adjusted``. A skipped module counts as done: its dependents run without it and
        are told so."""
        task_id = spec.task_id
        modules = spec.plan.modules
        runs = await self._prepare_runs(spec, set(rerun))
        skipped = {m for m, run in runs.items() if run.status is ModuleStatus.SKIPPED}
        latest = await self.store.latest_artifacts(task_id)
        artifacts = {m: a for m, a in latest.items() if m not in skipped}
        done = skipped | {
            module_id
            for module_id, run in runs.items()
            if run.status is ModuleStatus.DONE and module_id in artifacts
        }
        # Before this build starts: a completion the stop cut off belongs to the build before.
        await announce_completed(
            self.store, self.bus, task_id, [runs[m.id] for m in modules if m.id in done - skipped]
        )
        research = self.research
        if research is not None and not await research.available(task_id):
            research = None
        await self.bus.publish(
            task_id,
            "build.started",
            {
                "waves": waves(modules),
                "skipped": sorted(done),
                "rerun": sorted(rerun),
                "research": research is not None,
            },
        )

        async def body(gate: BudgetGate) -> None:
            async with self._toolset(spec) as toolset:
                await run_modules(gate, toolset)

        async def run_modules(gate: BudgetGate, toolset: Toolset | None) -> None:
            runner = ModuleRunner(
                store=self.store,
                bus=self.bus,
                router=self.router,
                research=research,
                policy=self.policy,
                spec=spec,
                runs=runs,
                artifacts=artifacts,
                gate=gate,
                notes=notes,
                skipped=frozenset(skipped),
                toolset=toolset,
                max_turns=self.max_turns,
                redact=self.redact,
                consent=self.consent,
            )

            async def run_one(module: ModuleSpec) -> None:
                with structlog.contextvars.bound_contextvars(task_id=task_id, module_id=module.id):
                    await runner.run(module)

            await run_dag(
                modules,
                run_one,
                max_concurrency=self.max_concurrency,
                done=done,
                contained=(ModuleFailed,),
            )

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

    @contextlib.asynccontextmanager
    async def _toolset(self, spec: TaskSpec) -> AsyncIterator[Toolset | None]:
        """The tools the plan's modules name, MCP servers connected for the whole build (None
        when no module has tools). A server that cannot be used stops the build before any
        module spends: ``ConfigError`` with its one-line reason."""
        names = [name for module in spec.plan.modules for name in module.tools]
        if not names:
            yield None
            return
        problems = self.tools.problems(names)
        if problems:
            raise stopped_for_tools(problems, spec.task_id, before=BUILD_STEP, then="resume")
        extra: dict[str, Tool] = {}
        if self.attachments is not None:
            extra[SEARCH_SPEC.name] = SearchAttachments(self.attachments, spec.task_id)
        async with contextlib.AsyncExitStack() as stack:
            try:
                # A router that keeps what is in flight (not a test's) hears of the servers'
                # stop, which a second Ctrl-C waits for and names.
                in_flight = getattr(self.router, "in_flight", None)
                finishing = in_flight.finishing if in_flight is not None else None
                toolset = await stack.enter_async_context(
                    self.tools.open(names, extra, finishing=finishing)
                )
            except ToolError as err:
                stopped = stopped_for_tools(
                    [str(err)], spec.task_id, before=BUILD_STEP, then="resume"
                )
                raise stopped from err
            yield toolset

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

    # ------------------------------------------------------------------ stitch and judge
    async def _outputs(self, spec: TaskSpec) -> tuple[dict[str, Artifact], list[str]]:
        """The latest output of every module not skipped, in plan order, and the skipped ids.
        Raises ``AgentfirmError`` when a module that is not skipped has no output yet."""
        latest = await self.store.latest_artifacts(spec.task_id)
        runs = {r.module_id: r for r in await self.store.list_module_runs(spec.task_id)}
        skipped = [
            m.id
            for m in spec.plan.modules
            if m.id in runs and runs[m.id].status is ModuleStatus.SKIPPED
        ]
        missing = [m.id for m in spec.plan.modules if m.id not in latest and m.id not in skipped]
        if missing:
            raise AgentfirmError(
                f"cannot stitch task {spec.task_id}: no output yet from {', '.join(missing)}",
                hint="run the build first",
            )
        artifacts = {m.id: latest[m.id] for m in spec.plan.modules if m.id not in skipped}
        return artifacts, skipped

    async def stitch(self, spec: TaskSpec) -> tuple[Artifact, str]:
        """Stitch the latest module outputs into the deliverable (a reasoning-tier call), save it
        as artifact ``_deliverable`` (next version) and publish ``draft.ready``. Returns the
        artifact and its markdown, which starts with the simulation banner when any call of the
        task was simulated and marks skipped modules in its appendix. Raises ``AgentfirmError``
        when a module that was not skipped has no output yet."""
        task_id = spec.task_id
        artifacts, skipped = await self._outputs(spec)
        content, simulated = await self._stitch(spec, artifacts, skipped)
        ledger = await self.store.list_ledger(task_id)
        simulated = simulated or any(entry.simulated for entry in ledger)
        markdown = deliverable_markdown(spec, content, artifacts, simulated=simulated)
        previous = (await self.store.latest_artifacts(task_id)).get(DELIVERABLE_ID)
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
                "skipped": skipped,
                "simulated": simulated,
            },
        )
        return artifact, markdown

    async def _stitch(
        self, spec: TaskSpec, artifacts: dict[str, Artifact], skipped: list[str]
    ) -> tuple[dict[str, Any], bool]:
        """The deliverable's content: one stitch call when the outputs fit ``stitch_tokens``,
        else groups stitched into parts, level by level, until the parts fit one call."""
        inputs, level, simulated = artifacts, 0, False
        while not fits(
            messages := stitch_messages(spec, inputs, skipped=skipped), self.stitch_tokens
        ):
            level += 1
            batches = groups(spec, inputs, self.stitch_tokens, skipped=skipped)
            parts: dict[str, Artifact] = {}
            for n, batch in enumerate(batches, start=1):
                chunk = {key: inputs[key] for key in batch}
                result = await self._reasoning_call(
                    spec,
                    STITCH_ID,
                    part_messages(spec, chunk, part=n, of=len(batches)),
                    schema_for("deliverable"),
                )
                simulated = simulated or result.simulated
                part = part_artifact(spec, n, level, structured_output(result, module_id=STITCH_ID))
                parts[part.module_id] = part
            inputs = parts
        result = await self._reasoning_call(spec, STITCH_ID, messages, schema_for("deliverable"))
        return structured_output(result, module_id=STITCH_ID), simulated or result.simulated

    async def judge(self, spec: TaskSpec, deliverable_md: str) -> dict[str, Any]:
        """Judge every checklist item pass/fail with evidence (one reasoning-tier call; none when
        the checklist is empty). Returns ``{items: [{item, passed, evidence, modules}], passed,
        failed, simulated}`` with exactly one item per checklist entry, in order; items the model
        left out fail with evidence ``"not judged"``; ``modules`` names the modules whose output
        would have to change to meet a failed item (empty for a passed one). A deliverable too
        long for ``stitch_tokens`` is judged cut at a section heading (``judge_messages``).
        Publishes ``quality.judged``."""
        task_id = spec.task_id
        checklist = spec.quality_checklist
        module_ids = [m.id for m in spec.plan.modules]
        items: list[dict[str, Any]] = []
        simulated = False
        if checklist:
            result = await self._reasoning_call(
                spec,
                QUALITY_ID,
                judge_messages(spec, deliverable_md, bound=self.stitch_tokens),
                judge_schema(checklist, module_ids),
            )
            raw = structured_output(result, module_id=QUALITY_ID).get("items")
            judged = [e for e in raw if isinstance(e, Mapping)] if isinstance(raw, list) else []
            items = match_verdicts(checklist, judged, module_ids)
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
            return await retrying(
                self.bus,
                task_id,
                call_id,
                self.policy,
                gate,
                lambda: self.router.call(
                    tier="reasoning",
                    messages=messages,
                    task_id=task_id,
                    module_id=call_id,
                    output_schema=schema,
                    max_tokens=MAX_TOKENS["reasoning"],
                ),
            )

        with structlog.contextvars.bound_contextvars(task_id=task_id, module_id=call_id):
            result = await self._supervised(task_id, body)
        await publish_cost(self.store, self.bus, task_id, call_id, result)
        return result

    # ------------------------------------------------------------------ plumbing
    async def _supervised(self, task_id: str, body: Callable[[BudgetGate], Awaitable[T]]) -> T:
        """Run ``body`` with a budget gate fed by the task's control stream. An ``abort`` control
        event cancels the body, publishes ``build.aborted`` and raises ``BuildAborted``; any other
        error of the body is re-raised on its own (no ``ExceptionGroup``)."""
        gate = BudgetGate(store=self.store, bus=self.bus, task_id=task_id)
        after_seq, standing = await last_control_seq(self.bus, task_id)
        if standing is not None:  # cancelled before it watched: nothing starts
            await self._aborted(task_id, BuildAborted(standing))
        try:
            async with asyncio.TaskGroup() as group:
                watcher = group.create_task(gate.watch(after_seq=after_seq), name="control-watch")
                result = await body(gate)
                watcher.cancel()
        except BaseExceptionGroup as errors:
            leaves = leaf_errors(errors)
            aborted = [e for e in leaves if isinstance(e, BuildAborted)]
            if aborted:
                await self._aborted(task_id, aborted[0])
            raise leaves[0] from None
        return result

    async def _aborted(self, task_id: str, err: BuildAborted) -> NoReturn:
        log.warning("build.aborted", task_id=task_id, reason=err.reason)
        await self.bus.publish(task_id, "build.aborted", {"reason": err.reason})
        raise err from None

    async def _publish(
        self, task_id: str, type_: str, module_id: str, payload: dict[str, Any]
    ) -> None:
        await self.bus.publish(task_id, type_, payload, module_id=module_id)


def _context_window(router: RouterLike) -> int | None:
    """The reasoning model's context window when the router can tell (model metadata)."""
    from agentfirm.router.router import Router

    return router.context_window("reasoning") if isinstance(router, Router) else None
