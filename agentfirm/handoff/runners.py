"""Runners: where a task's Build Master runs its modules and stitches the draft.

- ``inproc``: in the Master Agent's own process (the default).
- ``notebook``: the task repo's notebook, executed headless here by nbclient in a kernel of this
  very Python, so the remote path is exercised on every run.
- ``colab``: the same notebook in Colab, opened from its link; the runner waits on the bus.
- ``worker``: queued on the Redis work queue for ``agentfirm worker`` processes (any machine);
  the runner waits on the bus.

Whatever runs the build publishes on the task's bus, so the Master Agent sees every event either
way; the notebook ends with one ``runner.finished`` event, and the runner returns the draft for
review (the decision stays with the Master Agent). Colab reaches the Master only through shared
backends: it needs the Postgres store and the Redis bus, not the embedded files; so do workers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from agentfirm.build.assembly import deliverable_markdown
from agentfirm.build.budget_gate import BuildAborted
from agentfirm.build.master import DELIVERABLE_ID, BuildMaster, ModuleFailed
from agentfirm.bus.base import Bus
from agentfirm.domain import TaskSpec
from agentfirm.errors import AgentfirmError, BadInput, BudgetExceeded
from agentfirm.handoff.github import GitHubRepos
from agentfirm.handoff.kernel import KernelRun
from agentfirm.handoff.notebook import SKIP_INSTALL_ENV, read_notebook
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import (
    NOTEBOOK_PATH,
    RUN_FINISHED,
    RUN_LAUNCHED,
    RUN_PATH,
    RunFinished,
    RunRequest,
)
from agentfirm.ids import new_id
from agentfirm.settings import ENV_PREFIX, Settings
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

RunnerName = Literal["inproc", "notebook", "colab", "worker"]
Redact = Callable[[str], str]
OnLaunch = Callable[[str], Awaitable[None] | None]


class Runner(Protocol):
    name: str

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        """Run every module of ``spec`` not yet done (those a revision set pending get
        ``notes``), stitch the draft and return its markdown. Raises as ``BuildMaster`` does:
        ``ModuleFailed``, ``BuildAborted`` (a ``TaskRejected``), ``BudgetExceeded``, or
        ``AgentfirmError`` when the run itself failed."""
        ...


def _same(text: str) -> str:
    return text


class InprocRunner:
    """The Build Master in this process."""

    name = "inproc"

    def __init__(self, build: BuildMaster) -> None:
        self.build = build

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        await self.build.execute(spec, notes=notes)
        _draft, markdown = await self.build.stitch(spec)
        return markdown


async def draft_markdown(store: Store, spec: TaskSpec) -> str:
    """The latest stitched draft as markdown, rebuilt from the store without a model call (the
    same text ``BuildMaster.stitch`` returned). Raises ``AgentfirmError`` when there is none."""
    latest = await store.latest_artifacts(spec.task_id)
    draft = latest.get(DELIVERABLE_ID)
    if draft is None:
        raise AgentfirmError(
            f"task {spec.task_id} has no stitched draft", hint="run the build first"
        )
    artifacts = {m.id: latest[m.id] for m in spec.plan.modules if m.id in latest}
    simulated = any(entry.simulated for entry in await store.list_ledger(spec.task_id))
    return deliverable_markdown(spec, draft.content, artifacts, simulated=simulated)


def settings_env(settings: Settings) -> dict[str, str]:
    """``AGENTFIRM_*`` variables that reproduce ``settings`` in another process (secrets are
    not settings: they travel through the secret store)."""
    out: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json", exclude_none=True).items():
        out[ENV_PREFIX + name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return out


class _RemoteRunner:
    """What the notebook and Colab runners share: the run request, the launch event and reading
    the ``runner.finished`` event back."""

    name: str

    def __init__(
        self, *, store: Store, bus: Bus, repos: RepoBackend, redact: Redact = _same
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

    async def _launched(self, spec: TaskSpec, run: RunRequest, url: str | None) -> None:
        payload: dict[str, Any] = {"run_id": run.run_id, "runner": self.name}
        if url:
            payload["url"] = url
        await self.bus.publish(spec.task_id, RUN_LAUNCHED, payload)
        log.info("runner.launched", task_id=spec.task_id, **payload)

    async def _finished(self, task_id: str, run_id: str, after: int) -> RunFinished | None:
        for event in await self.bus.replay(task_id, after_seq=after):
            if event.type == RUN_FINISHED and event.payload.get("run_id") == run_id:
                return RunFinished.model_validate(event.payload)
        return None

    async def _wait(self, task_id: str, run_id: str, after: int) -> RunFinished:
        stream = self.bus.subscribe(task_id, after_seq=after)
        try:
            async for event in stream:
                if event.type == RUN_FINISHED and event.payload.get("run_id") == run_id:
                    return RunFinished.model_validate(event.payload)
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()
        raise AgentfirmError(
            f"the bus closed before the {self.name} run {run_id} of task {task_id} finished",
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


class NotebookRunner(_RemoteRunner):
    """Executes the task repo's notebook headless (nbclient) in a kernel of this Python, with
    the caller's settings and environment, and waits for it. A GitHub task repo's notebook runs
    in a scratch directory under the data dir and fetches its spec as Colab would."""

    name = "notebook"

    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        repos: RepoBackend,
        settings: Settings,
        env: Mapping[str, str],
        redact: Redact = _same,
        startup_timeout_s: int = 60,
        cell_timeout_s: int | None = None,
    ) -> None:
        super().__init__(store=store, bus=bus, repos=repos, redact=redact)
        self.settings = settings
        self.env = dict(env)
        self.startup_timeout_s = startup_timeout_s
        self.cell_timeout_s = cell_timeout_s

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        """See ``Runner.execute``. The executed notebook is kept under the state dir:
        ``runs/{task_id}/{run_id}.ipynb``."""
        location, run, after = await self._prepare(spec, notes)
        workdir, notebook = await self._materialize(location, spec.task_id)
        await self._launched(spec, run, None)
        executed, failure = await self._execute_notebook(notebook, workdir)
        saved = self.settings.paths.state_dir / "runs" / spec.task_id / f"{run.run_id}.ipynb"
        await asyncio.to_thread(_save, saved, executed)
        finished = await self._finished(spec.task_id, run.run_id, after)
        if finished is None:
            raise AgentfirmError(
                "the task notebook stopped before its build finished: "
                + self._redact(failure or "it published no result"),
                hint=f"see the executed notebook {saved}",
            )
        if failure:
            log.warning("runner.notebook_cell_failed", task_id=spec.task_id, error=failure)
        return await self._result(spec, finished)

    def kernel_env(self) -> dict[str, str]:
        """The kernel's environment: the caller's, its settings spelled out (a ``.env`` or
        ``config.toml`` the kernel would not find says the same), and no install step."""
        return {**self.env, **settings_env(self.settings), SKIP_INSTALL_ENV: "1"}

    async def _materialize(self, location: str, task_id: str) -> tuple[Path, dict[str, Any]]:
        if isinstance(self.repos, GitHubRepos):
            workdir = self.settings.paths.data_dir / "runs" / task_id
            await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
            text = await self.repos.read_file(location, NOTEBOOK_PATH)
        else:
            workdir = Path(location)
            text = await asyncio.to_thread(_read_bytes, workdir / NOTEBOOK_PATH)
        if text is None:
            raise BadInput(
                f"the task repo {location} has no {NOTEBOOK_PATH}",
                hint="hand the task off again to write it",
            )
        return workdir, read_notebook(text)

    async def _execute_notebook(
        self, notebook: dict[str, Any], workdir: Path
    ) -> tuple[dict[str, Any], str | None]:
        run = KernelRun(
            notebook,
            workdir=workdir,
            env=self.kernel_env(),
            startup_timeout_s=self.startup_timeout_s,
            cell_timeout_s=self.cell_timeout_s,
        )
        return await run.run()


class ColabRunner(_RemoteRunner):
    """Launches the task notebook in Colab: pushes the run request, publishes the Colab URL
    (``runner.launched``; ``on_launch`` gets it too, to print or post it) and waits on the bus
    for the run's ``runner.finished``. Needs GitHub task repos."""

    name = "colab"

    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        repos: RepoBackend,
        on_launch: OnLaunch | None = None,
        redact: Redact = _same,
    ) -> None:
        super().__init__(store=store, bus=bus, repos=repos, redact=redact)
        self._on_launch = on_launch

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        """See ``Runner.execute``; waits as long as the Colab run takes (cancel to stop)."""
        if not isinstance(self.repos, GitHubRepos):
            raise BadInput(
                "the colab runner needs GitHub task repos",
                hint="set AGENTFIRM_REPO_BACKEND=github and GITHUB_TOKEN, or use --runner notebook",
            )
        location, run, after = await self._prepare(spec, notes)
        url = await self.repos.launch_url(location, NOTEBOOK_PATH)
        await self._launched(spec, run, url)
        if self._on_launch is not None:
            maybe = self._on_launch(url)
            if maybe is not None:
                await maybe
        finished = await self._wait(spec.task_id, run.run_id, after)
        return await self._result(spec, finished)


def runner_for(
    name: RunnerName,
    *,
    build: BuildMaster,
    store: Store,
    bus: Bus,
    repos: RepoBackend,
    settings: Settings,
    env: Mapping[str, str],
    redact: Redact = _same,
    on_launch: OnLaunch | None = None,
) -> Runner:
    """The runner called ``name`` (``settings.runner`` or ``--runner``). ``env`` is the
    environment the settings were loaded from (the notebook's kernel gets it)."""
    if name == "notebook":
        return NotebookRunner(
            store=store, bus=bus, repos=repos, settings=settings, env=env, redact=redact
        )
    if name == "colab":
        return ColabRunner(store=store, bus=bus, repos=repos, on_launch=on_launch, redact=redact)
    if name == "worker":
        from agentfirm.handoff.worker_runner import WorkerRunner

        return WorkerRunner(store=store, bus=bus, repos=repos, settings=settings, redact=redact)
    return InprocRunner(build)


def runner_problems(settings: Settings, name: RunnerName | None = None) -> list[str]:
    """Configuration problems of the runner ``name`` (default ``settings.runner``), for
    ``config check`` and before a run: Colab can only reach GitHub repos and shared backends;
    workers share the task through the Postgres store and the Redis bus."""
    runner = name or settings.runner
    if runner not in ("colab", "worker"):
        return []
    problems = []
    if runner == "colab" and settings.repo_backend != "github":
        problems.append(
            "runner: colab opens the notebook from GitHub — set AGENTFIRM_REPO_BACKEND=github "
            "(and GITHUB_TOKEN), or use the notebook runner"
        )
    if not shared_backends(settings):
        problems.append(
            f"runner: {runner} cannot reach this machine's embedded store and bus — set "
            "AGENTFIRM_DATABASE_URL=postgresql://… and AGENTFIRM_REDIS_URL=redis://…, "
            "or use the " + ("notebook" if runner == "colab" else "inproc") + " runner"
        )
    return problems


def shared_backends(settings: Settings) -> bool:
    """True when the store is Postgres and the bus Redis: what processes on other machines
    (Colab, workers) need to share a task."""
    database = settings.database_url or ""
    return database.startswith(("postgresql://", "postgres://")) and bool(settings.redis_url)


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _save(path: Path, notebook: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1, sort_keys=True) + "\n", encoding="utf-8")
