"""Closing a task: the quality judgement (with one automatic revision round for failing items
when the budget allows), then the deliverable, ``quality.json``, the cost summary and the ledger
export committed to the task repo, and ``task.completed`` with all the metadata.

The revision round: the modules the judge named for the failing items (else the plan's last
modules) and everything downstream of them re-run with the failing items and their evidence as
notes; the draft is stitched and judged again. It runs only when the worst case of those calls
fits in what is left of the budget, so it never stops the task for budget, and only on a real
judge's verdicts: the offline provider's are a simulation, as meaningless to revise against as
they are for choosing a persona. A ``quality.revision`` event marks it started: after a crash it
is finished, never started twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog

from agentfirm.build_master.module_runner import ModuleFailed
from agentfirm.bus.base import Bus
from agentfirm.domain.calls import QUALITY_ID, STITCH_ID
from agentfirm.domain.costs import summarize
from agentfirm.domain.models import ModuleStatus, TaskSpec, TaskStatus
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import DELIVERABLE_PATH, closing_files
from agentfirm.master.estimate import Estimate
from agentfirm.master.result import RunResult, result_of
from agentfirm.master.review import descendants, mark_pending
from agentfirm.master.transitions import move
from agentfirm.money import nano_to_float
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")
REVISION_EVENT = "quality.revision"
_SIMULATED = "the verdicts are simulated (offline provider): nothing to revise against"


class Gated(Protocol):
    async def __call__(self, task_id: str, work: Callable[[], Awaitable[T]]) -> T: ...


class Judge(Protocol):
    async def judge(self, spec: TaskSpec, deliverable_md: str) -> dict[str, Any]: ...


Execute = Callable[[TaskSpec, str], Awaitable[str]]
"""Run the modules not done (with the notes) and return the new draft: ``Runner.execute``."""


def revision_notes(failing: list[dict[str, Any]]) -> str:
    lines = "\n".join(f"- {i['item']} — {i.get('evidence') or 'not met'}" for i in failing)
    return (
        "Quality review: the draft fails these checklist items. Revise your module so the "
        f"deliverable meets them.\n\n{lines}"
    )


@dataclass
class Closer:
    store: Store
    bus: Bus
    actor: str
    build: Judge
    repos: RepoBackend
    task_repo: Callable[[str, TaskSpec], Awaitable[str]]
    """The task repo's location, written again if it was deleted (``MasterAgent._task_repo``)."""
    execute: Execute
    gated: Gated
    estimate: Callable[[TaskSpec], Estimate]
    drain: Callable[[str], Awaitable[None]]
    quality_revision: bool = True

    async def close(self, task_id: str, spec: TaskSpec, markdown: str) -> RunResult:
        draft = markdown
        quality, markdown = await self.quality(task_id, spec, markdown)
        task = await self.store.get_task(task_id)
        repo = await self.task_repo(task_id, spec)
        ledger = await self.store.list_ledger(task_id)
        files = closing_files(
            spec,
            location=repo,
            deliverable=markdown,
            draft=draft,
            outputs=await self.store.latest_artifacts(task_id),
            quality=quality,
            costs=summarize(ledger, with_calls=True),
        )
        await self.repos.write_files(repo, files)
        sha = await self.repos.commit(repo, f"agentfirm: deliverable for task {task_id}")
        task.deliverable_path = f"{repo}/{DELIVERABLE_PATH}"
        await self.store.save_task(task)
        await move(
            self.store,
            self.bus,
            task_id,
            TaskStatus.COMPLETED,
            actor=self.actor,
            reason=f"committed {sha[:12]}",
        )
        await self.bus.publish(
            task_id,
            "task.completed",
            {
                "deliverable": task.deliverable_path,
                "repo": repo,
                "commit": sha,
                "quality": {
                    "passed": quality.get("passed"),
                    "failed": quality.get("failed"),
                    "revised": bool((quality.get("revision") or {}).get("done")),
                },
                "cost": summarize(ledger),
            },
        )
        await self.drain(task_id)
        return await result_of(self.store, task_id, "completed")

    async def quality(
        self, task_id: str, spec: TaskSpec, markdown: str
    ) -> tuple[dict[str, Any], str]:
        """The final quality report and the draft it judged (revised or not)."""
        started = await self._revision_started(task_id)
        if started is not None:  # a round a crash cut short, or finished before the crash
            done = True
            if await self._unfinished(task_id, spec):
                revised = await self._rerun(task_id, spec, started)
                done = revised is not None
                markdown = revised or markdown
            report = await self._judge(task_id, spec, markdown)
            report["revision"] = {"done": done, **started}
            return report, markdown
        report = await self._judge(task_id, spec, markdown)
        failing = [item for item in report["items"] if not item["passed"]]
        if not failing or not self.quality_revision:
            return report, markdown
        if report.get("simulated"):
            report["revision"] = {"done": False, "reason": _SIMULATED}
            return report, markdown
        named = {m for item in failing for m in item.get("modules") or ()}
        rerun = descendants(spec.plan, named or _last_modules(spec))
        needed, available = await self._round_cost(task_id, spec, rerun)
        if needed > available:
            log.info("quality.revision_skipped", task_id=task_id, needed_nano=needed)
            report["revision"] = {
                "done": False,
                "reason": "the budget left does not cover a revision round",
                "needed_usd": nano_to_float(needed),
                "available_usd": nano_to_float(available),
            }
            return report, markdown
        started = {
            "modules": sorted(rerun),
            "failed_items": [item["item"] for item in failing],
            "notes": revision_notes(failing),
        }
        await self.bus.publish(task_id, REVISION_EVENT, started)
        await mark_pending(self.store, task_id, rerun)
        revised = await self._rerun(task_id, spec, started)
        if revised is None:  # the round failed: the approved draft stands
            report["revision"] = {"done": False, "reason": "a module failed", **started}
            return report, markdown
        report = await self._judge(task_id, spec, revised)
        report["revision"] = {"done": True, **started}
        return report, revised

    async def _judge(self, task_id: str, spec: TaskSpec, markdown: str) -> dict[str, Any]:
        return await self.gated(task_id, lambda: self.build.judge(spec, markdown))

    async def _rerun(self, task_id: str, spec: TaskSpec, started: dict[str, Any]) -> str | None:
        """Run the round's modules and return the new draft; None when a module failed (the
        round's modules are then marked done again: each keeps its latest output)."""
        notes = str(started.get("notes") or "")
        try:
            return await self.gated(task_id, lambda: self.execute(spec, notes))
        except ModuleFailed as err:
            log.warning("quality.revision_failed", task_id=task_id, error=str(err))
            await self.bus.publish(task_id, "quality.revision_failed", {"error": str(err)})
            latest = await self.store.latest_artifacts(task_id)
            for run in await self.store.list_module_runs(task_id):
                if run.status is not ModuleStatus.DONE and run.module_id in latest:
                    await self.store.upsert_module_run(
                        run.model_copy(update={"status": ModuleStatus.DONE})
                    )
            return None

    async def _revision_started(self, task_id: str) -> dict[str, Any] | None:
        for event in reversed(await self.bus.replay(task_id)):
            if event.type == REVISION_EVENT:
                return dict(event.payload)
        return None

    async def _unfinished(self, task_id: str, spec: TaskSpec) -> bool:
        ids = {m.id for m in spec.plan.modules}
        return any(
            run.module_id in ids and run.status in (ModuleStatus.PENDING, ModuleStatus.RUNNING)
            for run in await self.store.list_module_runs(task_id)
        )

    async def _round_cost(self, task_id: str, spec: TaskSpec, rerun: set[str]) -> tuple[int, int]:
        """The round's worst case (its modules, a stitch and a judgement, at list price) and
        what the budget has left."""
        calls = rerun | {STITCH_ID, QUALITY_ID}
        needed = sum(m.worst_nano for m in self.estimate(spec).modules if m.module_id in calls)
        budget = await self.store.get_budget(task_id)
        return needed, budget.available_nano


def _last_modules(spec: TaskSpec) -> set[str]:
    """The modules nothing depends on: closest to the deliverable."""
    needed = {d for m in spec.plan.modules for d in m.depends_on}
    return {m.id for m in spec.plan.modules if m.id not in needed}
