"""Failed modules: after a module's retries, the decider chooses retry, skip or abort.

Asked after the build stopped (every module not downstream of the failure has run by then), and
again on a resume for any module still marked failed, so a failed module never runs again
without a decision. Retry: its row goes back to pending (its attempts keep counting). Skip: its
row becomes ``skipped``; its dependents run with a note that its output is missing and the
deliverable marks it. Abort: the task ends ``aborted`` (exit 4) under the name of the person who
chose it, as aborting at any other question does. Nobody chooses under ``--yes`` (or with a
decider that cannot ask): the failed module fails the task (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from agentfirm.build_master.module_runner import ModuleFailed
from agentfirm.bus.base import Bus
from agentfirm.domain.models import ApprovalDecision, ModuleStatus, Task, TaskSpec, utcnow
from agentfirm.errors import TaskRejected
from agentfirm.master.decisions import AUTO_ACTOR, FAILURE_CHOICES, Decider, FailureChoice
from agentfirm.master.review import record_decision
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

_RECORDED: dict[FailureChoice, ApprovalDecision] = {
    "retry": "retry",
    "skip": "skip",
    "abort": "aborted",
}


class ModuleAborted(TaskRejected):
    """Someone chose abort at a failed module's question: the task ends ``aborted`` (exit 4),
    with ``actor`` (who chose, not the host asking for them) on the transition."""

    def __init__(self, module_id: str, error: str, actor: str) -> None:
        self.module_id = module_id
        self.error = error
        self.actor = actor
        super().__init__(f"aborted after module {module_id} failed: {error}")


@dataclass
class FailureHandler:
    store: Store
    bus: Bus
    decider: Decider

    async def settle(self, task: Task, spec: TaskSpec) -> ModuleFailed | ModuleAborted | None:
        """Ask about every module of ``spec`` marked failed, in plan order, and apply each
        answer. Returns what to end the task with when the answer is abort (the modules after
        it are not asked about): ``ModuleAborted`` when someone chose it, ``ModuleFailed`` when
        nobody did (``--yes``); None when every failed module was retried or skipped."""
        runs = {r.module_id: r for r in await self.store.list_module_runs(task.id)}
        for module in spec.plan.modules:
            run = runs.get(module.id)
            if run is None or run.status is not ModuleStatus.FAILED:
                continue
            error = await self._last_error(task.id, module.id, run.attempts)
            choice = await self._ask(task, module.id, error, run.attempts)
            log.info("module.failure_decided", task_id=task.id, module_id=module.id, choice=choice)
            if choice == "abort":
                chooser = await self._chooser(task.id, module.id, run.attempts)
                if chooser is None:
                    return ModuleFailed(module.id, error)
                return ModuleAborted(module.id, error, chooser)
            actor = self.decider.actor
            if choice == "retry":
                await self.store.upsert_module_run(
                    run.model_copy(update={"status": ModuleStatus.PENDING, "finished_at": None})
                )
                await self.bus.publish(
                    task.id, "module.retry", {"actor": actor}, module_id=module.id
                )
            else:
                await self.store.upsert_module_run(
                    run.model_copy(update={"status": ModuleStatus.SKIPPED, "finished_at": utcnow()})
                )
                await self.bus.publish(
                    task.id, "module.skipped", {"actor": actor, "error": error}, module_id=module.id
                )
        return None

    async def _ask(self, task: Task, module_id: str, error: str, attempts: int) -> FailureChoice:
        ask = getattr(self.decider, "module_failed", None)
        answer = await ask(task, module_id, error, attempts) if ask is not None else "abort"
        choice: FailureChoice = answer if answer in FAILURE_CHOICES else "abort"
        if not getattr(self.decider, "records_approvals", False):
            await record_decision(
                self.store,
                task.id,
                "failure",
                {"module_id": module_id, "error": error, "attempts": attempts},
                _RECORDED[choice],
                actor=self.decider.actor,
            )
        return choice

    async def _chooser(self, task_id: str, module_id: str, attempts: int) -> str | None:
        """Who answered the module's question (its approval row: a person deciding through any
        front end, or this decider's own record), None when nobody chose: a decider that cannot
        ask, or ``--yes``'s policy (in-process or answering the daemon's questions)."""
        if getattr(self.decider, "module_failed", None) is None:
            return None
        rows = [
            a
            for a in await self.store.list_approvals(task_id)
            if a.kind == "failure"
            and a.decision != "pending"
            and a.payload.get("module_id") == module_id
            and a.payload.get("attempts") == attempts
        ]
        actor = (rows[-1].actor if rows else None) or self.decider.actor
        return None if actor == AUTO_ACTOR else actor

    async def _last_error(self, task_id: str, module_id: str, attempts: int) -> str:
        """What the module's last failure said (its ``module.failed`` event)."""
        for event in reversed(await self.bus.replay(task_id)):
            if event.type == "module.failed" and event.module_id == module_id:
                return str(event.payload.get("error") or "unknown error")
        return f"failed after {attempts} attempt(s)"
