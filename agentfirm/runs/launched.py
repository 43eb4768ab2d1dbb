"""What the runners that launch a build elsewhere share (``notebook``, ``colab``, ``worker``): the
run request written into the task repo, the ``runner.launched`` event, and reading the run's
``runner.finished`` back from the bus into the draft or the build's own error."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from decimal import Decimal
from typing import Any

import structlog

from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.build_master.master import ModuleFailed
from agentfirm.bus.base import Bus
from agentfirm.domain.models import TaskSpec
from agentfirm.errors import AgentfirmError, BadInput, BudgetExceeded
from agentfirm.handoff.github import GitHubRepos
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import (
    RUN_FINISHED,
    RUN_LAUNCHED,
    RUN_PATH,
    RunFinished,
    RunRequest,
)
from agentfirm.ids import new_id
from agentfirm.runs.base import Redact, draft_markdown, same
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)


class LaunchedRunner:
    """What the notebook and Colab runners share: the run request, the launch event and reading
    the ``runner.finished`` event back."""

    name: str

    def __init__(
        self, *, store: Store, bus: Bus, repos: RepoBackend, redact: Redact = same
    ) -> None:
        self.store = store
        self.bus = bus
        self.repos = repos
        self._redact = redact

    async def _prepare(self, spec: TaskSpec, notes: str) -> tuple[str, RunRequest, int]:
        """Write ``run.json`` into the task repo (pushed for GitHub); returns the repo, the
        request and the last event seq before the run."""
        task = await self.store.get_task(spec.task_id)
        if task.repo_path is None:
            raise BadInput(
                f"task {spec.task_id} has no task repo yet",
                hint="the repo is written when the task is handed off",
            )
        location = task.repo_path
        run = RunRequest(run_id=new_id("run"), runner=self.name, notes=notes)
        events = await self.bus.replay(spec.task_id)
        after = events[-1].seq if events else 0
        await self.repos.write_files(location, {RUN_PATH: run.model_dump_json(indent=2) + "\n"})
        if isinstance(self.repos, GitHubRepos):
            await self.repos.commit(location, f"agentfirm: run {run.run_id} of the task notebook")
        return location, run, after

    async def _launched(
        self, spec: TaskSpec, run: RunRequest, url: str | None, secrets: Sequence[str] = ()
    ) -> None:
        payload: dict[str, Any] = {"run_id": run.run_id, "runner": self.name}
        if url:
            payload["url"] = url
        if secrets:
            payload["secrets"] = list(secrets)
        await self.bus.publish(spec.task_id, RUN_LAUNCHED, payload)
        log.info("runner.launched", task_id=spec.task_id, **payload)

    async def _finished(self, task_id: str, run_id: str, after: int) -> RunFinished | None:
        for event in await self.bus.replay(task_id, after_seq=after):
            if event.type == RUN_FINISHED and event.payload.get("run_id") == run_id:
                return RunFinished.model_validate(event.payload)
        return None

    async def _wait(self, task_id: str, runs: Collection[str], after: int) -> RunFinished:
        """The ``runner.finished`` of any run in ``runs``, published after ``after`` (the
        caller may add runs to ``runs`` while this waits)."""
        stream = self.bus.subscribe(task_id, after_seq=after)
        try:
            async for event in stream:
                if event.type == RUN_FINISHED and event.payload.get("run_id") in runs:
                    return RunFinished.model_validate(event.payload)
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
        raise AgentfirmError(
            f"the bus closed before the {self.name} run of task {task_id} finished",
            hint="resume the task to wait again",
        )

    async def _result(self, spec: TaskSpec, finished: RunFinished) -> str:
        """The draft of a run that ended well; the build's own error otherwise."""
        error = self._redact(finished.error)
        if finished.outcome == "ok":
            return await draft_markdown(self.store, spec)
        if finished.outcome == "aborted":
            raise BuildAborted(error or "aborted")
        if finished.outcome == "failed":
            raise ModuleFailed(finished.module_id or "?", error)
        if finished.outcome == "budget_exceeded" and finished.budget:
            budget = finished.budget
            raise BudgetExceeded(
                task_id=spec.task_id,
                needed_usd=Decimal(str(budget.get("needed_usd", 0))),
                spent_usd=Decimal(str(budget.get("spent_usd", 0))),
                ceiling_usd=Decimal(str(budget.get("ceiling_usd", 0))),
            )
        raise AgentfirmError(
            f"the task notebook's build failed: {error or finished.outcome}",
            hint=f"fix the cause and retry; completed modules are not run again ({self.name})",
        )
