"""The entry point of the task notebook: run the Build Master for a spec away from the daemon.

``run_spec`` opens the same store and bus as the daemon (the embedded SQLite files under
``AGENTFIRM_HOME``, shared by processes on one machine, or the configured Postgres and Redis),
runs every pending module and stitches the draft, publishing every event as it goes. It writes the
module outputs to the task repo's ``outputs/`` (one commit, pushed, for GitHub repos) and ends with
one ``runner.finished`` event, which is what a waiting runner reads. Reviewing the draft stays
with the Master Agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from agentfirm.app import App
from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.build_master.master import BuildMaster, ModuleFailed
from agentfirm.domain.costs import summarize
from agentfirm.domain.models import ModuleStatus, TaskSpec, TaskStatus
from agentfirm.errors import AgentfirmError, BadInput, BudgetExceeded
from agentfirm.handoff.github import TOKEN_NAME, GitHubRepos
from agentfirm.handoff.repos import LocalGitRepos, RepoBackend
from agentfirm.handoff.task_repo import (
    OUTPUTS_DIR,
    RUN_FINISHED,
    RUN_PATH,
    SPEC_PATH,
    Outcome,
    RunFinished,
    RunRequest,
    repo_attachments,
)
from agentfirm.ids import new_id
from agentfirm.log import bind_ids, configure_logging
from agentfirm.runs.heap import settle_heap
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings, load_settings

log = structlog.get_logger(__name__)

Redact = Callable[[str], str]


@dataclass(frozen=True)
class RemoteResult:
    """How a notebook run of the Build Master ended (what the results cell shows)."""

    task_id: str
    run_id: str
    outcome: Outcome
    error: str
    modules_done: tuple[str, ...]
    modules_total: int
    cost_usd: float
    simulated: bool
    draft_title: str
    outputs: tuple[str, ...]
    location: str

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def summary(self) -> str:
        """A few lines for people: outcome, modules, draft, cost, where the outputs went."""
        lines = [f"task {self.task_id}, run {self.run_id}: {self.outcome}"]
        if self.error:
            lines.append(f"error: {self.error}")
        done = ", ".join(self.modules_done) or "none"
        lines.append(f"modules done: {len(self.modules_done)}/{self.modules_total} ({done})")
        if self.draft_title:
            lines.append(f"draft ready for review: {self.draft_title}")
        simulated = " (simulated)" if self.simulated else ""
        lines.append(f"cost so far: ${self.cost_usd:.4f}{simulated}")
        lines.append(f"outputs: {len(self.outputs)} files in {self.location} {OUTPUTS_DIR}/")
        return "\n".join(lines)


@dataclass(frozen=True)
class _Ended:
    outcome: Outcome
    error: str = ""
    module_id: str | None = None
    budget: dict[str, float] | None = None
    draft_version: int | None = None
    draft_title: str = ""
    markdown: str | None = None
    outputs: list[str] = field(default_factory=list)
    outputs_commit: str | None = None
    outputs_error: str = ""


def _config(
    settings: Settings | None, env: Mapping[str, str] | None
) -> tuple[dict[str, str], Settings]:
    environ = dict(os.environ if env is None else env)
    return environ, settings or load_settings(environ)


def _is_url(location: str) -> bool:
    return "://" in location


def _github(settings: Settings, secrets: SecretStore) -> GitHubRepos:
    return GitHubRepos(
        token=lambda: secrets.get(TOKEN_NAME),
        owner=settings.github_owner,
        api_url=settings.github_api_url,
    )


def _backend(location: str, settings: Settings, secrets: SecretStore) -> RepoBackend:
    """GitHub for a repo URL, the local directory otherwise (whatever the default backend)."""
    if _is_url(location):
        return _github(settings, secrets)
    return LocalGitRepos(Path(location).parent)


# ---------------------------------------------------------------------------- the spec
async def locate_spec(
    repo: str = "",
    *,
    dest: Path | None = None,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The path of the spec to run. ``repo`` empty: ``spec.json`` in ``dest`` (default: the
    current directory, the task repo's own). ``repo`` a GitHub URL: ``spec.json`` and the current
    ``run.json`` are fetched from it into ``dest`` first (Colab opens the notebook alone).
    Raises ``BadInput`` when there is no spec."""
    here = dest or Path.cwd()
    if not repo:
        path = here / SPEC_PATH
        if not await asyncio.to_thread(path.is_file):
            raise BadInput(
                f"no {SPEC_PATH} in {here}",
                hint="run the notebook inside its task repo, or set REPO to the repo's URL",
            )
        return path
    environ, config = _config(settings, env)
    github = _github(config, SecretStore(Redactor(), env=environ))
    spec = await github.read_file(repo, SPEC_PATH)
    if spec is None:
        raise BadInput(f"the task repo {repo} has no {SPEC_PATH}", hint="hand the task off again")
    run = await github.read_file(repo, RUN_PATH)
    await asyncio.to_thread(_store_fetched, here, spec, run)
    return here / SPEC_PATH


def _store_fetched(here: Path, spec: bytes, run: bytes | None) -> None:
    here.mkdir(parents=True, exist_ok=True)
    (here / SPEC_PATH).write_bytes(spec)
    if run is None:
        (here / RUN_PATH).unlink(missing_ok=True)  # an earlier run's request is not this one's
    else:
        (here / RUN_PATH).write_bytes(run)


def _read_inputs(spec_path: Path) -> tuple[TaskSpec, RunRequest]:
    try:
        spec = TaskSpec.model_validate_json(spec_path.read_bytes())
    except OSError as err:
        raise BadInput(f"cannot read the spec {spec_path}: {err.strerror}") from err
    except ValueError as err:
        raise BadInput(
            f"{spec_path} is not a valid task spec: {err}", hint="hand the task off again"
        ) from err
    run_file = spec_path.parent / RUN_PATH
    if not run_file.is_file():
        return spec, RunRequest(run_id=new_id("run"), runner="manual")
    try:
        return spec, RunRequest.model_validate_json(run_file.read_bytes())
    except ValueError as err:
        raise BadInput(f"{run_file} is not a valid run request: {err}") from err


# ---------------------------------------------------------------------------- the run
async def run_spec(
    spec_path: str | Path,
    *,
    settings: Settings | None = None,
    env: Mapping[str, str] | None = None,
    repo: str | None = None,
    configure_logs: bool = True,
) -> RemoteResult:
    """Run the Build Master for the spec at ``spec_path``: every module not yet done (with the
    revision notes of ``run.json`` beside it), then the stitched draft; write the module outputs
    to the task repo ``repo`` (default: the spec's directory) and publish ``runner.finished``.

    Settings come from ``env`` (default ``os.environ``) unless given; secrets from the keyring
    and ``env``. ``configure_logs`` sends logs to the log file, redacted (the notebook's process
    is its own). Build failures are reported in the result and the event, not raised; a spec that
    cannot be read raises ``BadInput``, and an unexpected error is published, then raised."""
    environ, config = _config(settings, env)
    redactor = Redactor()
    secrets = SecretStore(redactor, env=environ)
    for name in secrets.KNOWN:  # every secret is registered for redaction before work starts
        secrets.get(name)
    if configure_logs:
        await asyncio.to_thread(config.paths.ensure)
        configure_logging(log_path=config.paths.log_path, redactor=redactor, level=config.log_level)
    path = await asyncio.to_thread(Path(spec_path).resolve)
    spec, run = await asyncio.to_thread(_read_inputs, path)
    location = repo or str(path.parent)
    repos = _backend(location, config, secrets)
    app = await App.open(config, redactor=redactor, secrets=secrets)
    async with app:
        settle_heap()
        with bind_ids(task_id=spec.task_id):
            log.info("remote.run_started", run_id=run.run_id, repo=location, runner=run.runner)
            return await _run(app, repos, location, spec, run, redactor.redact)


async def run_for_worker(app: App, spec: TaskSpec, run: RunRequest) -> RemoteResult:
    """What ``agentfirm worker`` does with a claimed task: ``run_spec`` on an open app, for a
    spec read from the store. The outputs go to the task's repo when this machine can reach it
    (a GitHub repo, or a local one on a shared disk); a failure to write them is reported, not
    raised. Cancelled (the worker is stopping, or another worker took the task over), it
    publishes nothing: the run is not over, someone else finishes it. A run that already
    finished (queued again after a Redis restart lost its acked entry, or handed out twice) is
    not run again: its finish is reported as it was."""
    task = await app.store.get_task(spec.task_id)
    location = task.repo_path or ""
    earlier = [
        RunFinished.model_validate(event.payload)
        for event in await app.bus.replay(spec.task_id)
        if event.type == RUN_FINISHED and event.payload.get("run_id") == run.run_id
    ]
    if earlier:
        log.warning("remote.run_already_finished", task_id=spec.task_id, run_id=run.run_id)
        runs = await app.store.list_module_runs(spec.task_id)
        ledger = summarize(await app.store.list_ledger(spec.task_id))
        return RemoteResult(
            task_id=spec.task_id,
            run_id=run.run_id,
            outcome=earlier[0].outcome,
            error=earlier[0].error,
            modules_done=tuple(r.module_id for r in runs if r.status is ModuleStatus.DONE),
            modules_total=len(spec.plan.modules),
            cost_usd=float(ledger["total_usd"]),
            simulated=bool(ledger["simulated"]),
            draft_title="",
            outputs=tuple(earlier[0].outputs),
            location=location,
        )
    repos = _backend(location, app.settings, app.secrets) if location else None
    with bind_ids(task_id=spec.task_id):
        log.info("remote.run_started", run_id=run.run_id, repo=location, runner=run.runner)
        return await _run(
            app, repos, location, spec, run, app.redactor.redact, announce_cancellation=False
        )


async def _run(
    app: App,
    repos: RepoBackend | None,
    location: str,
    spec: TaskSpec,
    run: RunRequest,
    redact: Redact,
    *,
    announce_cancellation: bool = True,
) -> RemoteResult:
    try:
        ended = await _build(app, repos, location, spec, run, redact)
    except asyncio.CancelledError:
        if announce_cancellation:
            await _announce_crash(app, spec, run, "CancelledError: the run was cancelled", redact)
        raise
    except BaseException as err:
        await _announce_crash(app, spec, run, f"{type(err).__name__}: {err}", redact)
        raise
    ended = await _write_outputs(app, repos, location, spec, run, ended, redact)
    await _publish(app, spec, run, ended)
    runs = await app.store.list_module_runs(spec.task_id)
    ledger = summarize(await app.store.list_ledger(spec.task_id))
    log.info("remote.run_finished", run_id=run.run_id, outcome=ended.outcome)
    return RemoteResult(
        task_id=spec.task_id,
        run_id=run.run_id,
        outcome=ended.outcome,
        error=ended.error,
        modules_done=tuple(r.module_id for r in runs if r.status is ModuleStatus.DONE),
        modules_total=len(spec.plan.modules),
        cost_usd=float(ledger["total_usd"]),
        simulated=bool(ledger["simulated"]),
        draft_title=ended.draft_title,
        outputs=tuple(ended.outputs),
        location=location,
    )


async def _announce_crash(
    app: App, spec: TaskSpec, run: RunRequest, error: str, redact: Redact
) -> None:
    """The caller may be waiting on the bus for this run: tell it before going down."""
    with contextlib.suppress(Exception):
        await _publish(app, spec, run, _Ended("error", redact(error)))


async def _build(
    app: App,
    repos: RepoBackend | None,
    location: str,
    spec: TaskSpec,
    run: RunRequest,
    redact: Redact,
) -> _Ended:
    task = await app.store.get_task(spec.task_id)
    if task.status.is_final or task.status is TaskStatus.ABORTING:
        # Cancelled (or ended) before this run started — a queued worker run, a Colab link
        # opened late: its build watches only aborts sent from now on, so it must not start.
        log.warning("remote.task_already_ended", status=str(task.status))
        stopped = (TaskStatus.ABORTED, TaskStatus.ABORTING)
        outcome: Outcome = "aborted" if task.status in stopped else "error"
        return _Ended(outcome, f"the task is already {task.status}: nothing to build")
    try:
        build = BuildMaster.from_settings(
            app.settings, store=app.store, bus=app.bus, router=app.router
        )
        # Away from the Master's machine the request's documents are not in this data dir:
        # they travel in the task repo, and research should find them here too.
        library = build.attachments
        if repos is not None and library is not None and not await library.documents(spec.task_id):
            documents = await repo_attachments(repos, location)
            if documents:
                await library.add(spec.task_id, documents)
        await build.execute(spec, notes=run.notes)
        artifact, markdown = await build.stitch(spec)
    except BuildAborted as err:
        return _Ended("aborted", redact(err.reason))
    except ModuleFailed as err:
        return _Ended("failed", redact(err.error), module_id=err.module_id)
    except BudgetExceeded as err:
        budget = {
            "needed_usd": float(err.needed_usd),
            "spent_usd": float(err.spent_usd),
            "ceiling_usd": float(err.ceiling_usd),
        }
        return _Ended("budget_exceeded", redact(str(err)), budget=budget)
    except AgentfirmError as err:
        return _Ended("error", redact(str(err)))
    return _Ended(
        "ok",
        draft_version=artifact.version,
        draft_title=str(artifact.content.get("title", "")),
        markdown=markdown,
    )


async def _write_outputs(
    app: App,
    repos: RepoBackend | None,
    location: str,
    spec: TaskSpec,
    run: RunRequest,
    ended: _Ended,
    redact: Redact,
) -> _Ended:
    """Module outputs (and the draft) into ``outputs/``; one pushed commit for GitHub repos. A
    failure to write them is reported, not raised: the results are in the store either way."""
    if repos is None:
        return ended
    latest = await app.store.latest_artifacts(spec.task_id)
    files: dict[str, str] = {
        f"{OUTPUTS_DIR}/{module.id}.json": json.dumps(
            latest[module.id].model_dump(mode="json"), indent=2, ensure_ascii=False
        )
        + "\n"
        for module in spec.plan.modules
        if module.id in latest
    }
    if ended.markdown is not None:
        files[f"{OUTPUTS_DIR}/draft.md"] = ended.markdown
    if not files:
        return ended
    commit: str | None = None
    try:
        await repos.write_files(location, files)
        if isinstance(repos, GitHubRepos):
            commit = await repos.commit(location, f"agentfirm: outputs of run {run.run_id}")
        elif isinstance(repos, LocalGitRepos) and await repos.is_clone(location):
            # Not the task repo itself but a clone of it: commit there and push the outputs back.
            commit = await repos.commit(location, f"agentfirm: outputs of run {run.run_id}")
            await repos.push(location)
    except AgentfirmError as err:
        log.warning("remote.outputs_failed", error=str(err))
        return replace(ended, outputs_error=redact(str(err)))
    return replace(ended, outputs=sorted(files), outputs_commit=commit)


async def _publish(app: App, spec: TaskSpec, run: RunRequest, ended: _Ended) -> None:
    payload = RunFinished(
        run_id=run.run_id,
        outcome=ended.outcome,
        error=ended.error,
        module_id=ended.module_id,
        budget=ended.budget,
        draft_version=ended.draft_version,
        outputs=ended.outputs,
        outputs_commit=ended.outputs_commit,
        outputs_error=ended.outputs_error,
        host=socket.gethostname(),
        pid=os.getpid(),
    )
    await app.bus.publish(spec.task_id, RUN_FINISHED, payload.model_dump(mode="json"))
