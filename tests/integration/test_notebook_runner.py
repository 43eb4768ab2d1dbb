"""The remote path, run here: a whole offline task whose build runs in the task notebook, executed
headless in a real kernel (issue 7, acceptance 1 and 3), and the Colab runner against the loopback
GitHub with the "Colab" side played by ``remote.run_spec``.

The Master Agent is wired here the way the lead wires it in ``agent.py``: the hand-off publishes
the task repo (``publish_task_repo``) and execution goes through ``runner.execute``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from keyring.backends.null import Keyring as NullKeyring

from agentfirm.app import App
from agentfirm.build_master.master import BuildMaster
from agentfirm.domain.models import Event, TaskSpec, TaskStatus
from agentfirm.handoff.github import repos_for
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import RUN_FINISHED, RUN_LAUNCHED, publish_task_repo
from agentfirm.master.agent import MasterAgent, RunResult
from agentfirm.master.decisions import AutoDecider
from agentfirm.runs import remote
from agentfirm.runs.base import Runner, draft_markdown
from agentfirm.runs.colab import ColabRunner
from agentfirm.runs.kernel import KernelRun
from agentfirm.runs.notebook import NotebookRunner
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings, load_settings
from agentfirm.store.base import Store
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
PERSONA = "patent_research"
# Not shaped like real keys on purpose: only the redaction registry can catch them.
CANARIES = {
    "ANTHROPIC_API_KEY": "canary-anthropic-5f1e2d9c7b",
    "OPENAI_API_KEY": "canary-openai-8a7c6e5d4f",
    "GEMINI_API_KEY": "canary-gemini-1b2c3d4e5f",
    "GOOGLE_API_KEY": "canary-google-9e8d7c6b5a",
    "AGENTFIRM_OPENAI_COMPAT_API_KEY": "canary-compat-2468ace135",
    "GITHUB_TOKEN": "canary-github-13579bdf02",
}
_SCRUB = ("AGENTFIRM_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "GITHUB_", "SLACK_")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(
        AGENTFIRM_HOME=str(home),
        AGENTFIRM_OFFLINE="1",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",  # never the machine's keyring
        **extra,
    )
    return env


def github_env(home: Path, github: FakeGitHub, **extra: str) -> dict[str, str]:
    """``_env`` with task repos on the loopback GitHub."""
    return _env(
        home,
        AGENTFIRM_REPO_BACKEND="github",
        AGENTFIRM_GITHUB_API_URL=github.url,
        GITHUB_TOKEN="gh-test-token",
        **extra,
    )


@dataclass
class RunnerBuild:
    """Stands in for the one line the lead changes in ``MasterAgent._drive``: execution goes
    through ``runner.execute``, which returns the draft (judging stays in the daemon)."""

    runner: Runner
    build: BuildMaster
    store: Store

    async def execute(self, spec: TaskSpec, *, rerun: Any = (), notes: str = "") -> None:
        await self.runner.execute(spec, notes=notes)

    async def stitch(self, spec: TaskSpec) -> tuple[None, str]:
        return None, await draft_markdown(self.store, spec)

    async def judge(self, spec: TaskSpec, markdown: str) -> dict[str, Any]:
        return await self.build.judge(spec, markdown)


class HandOffMaster(MasterAgent):
    """``_hand_off`` as the lead wires it: the whole task repo in one commit."""

    async def _hand_off(self, task_id: str, spec: TaskSpec) -> RunResult:
        published = await publish_task_repo(
            self.repos, spec, persona=self.personas.get(spec.persona)
        )
        task = await self.store.get_task(task_id)
        task.repo_path = published.location
        await self.store.save_task(task)
        await self._move(task_id, TaskStatus.HANDED_OFF, "runner notebook")
        return await self._drive(task_id, spec)


@dataclass
class NotebookTask:
    result: RunResult
    received: list[Event]
    """What the Master Agent received and recorded, in order."""
    bus_seqs: list[int]
    home: Path
    repo: Path
    executed: list[Path]
    parent_pid: int


async def _run_through_notebook(home: Path, budget_usd: str | None = None) -> NotebookTask:
    env = _env(home, **CANARIES)
    settings = load_settings(env)
    redactor = Redactor()
    secrets = SecretStore(redactor, env=env, backend=NullKeyring())
    app = await App.open(settings, redactor=redactor, secrets=secrets)
    async with app:
        runner = NotebookRunner(
            store=app.store,
            bus=app.bus,
            repos=app.repos,
            settings=settings,
            env=env,
            redact=redactor.redact,
        )
        build = BuildMaster(store=app.store, bus=app.bus, router=app.router)
        master = HandOffMaster(
            store=app.store,
            bus=app.bus,
            build=RunnerBuild(runner, build, app.store),  # type: ignore[arg-type]
            personas=app.personas,
            pricing=app.router,
            repos=app.repos,
            decider=AutoDecider(),
            locks=app.locks,
        )
        result = await master.run(REQUEST, persona=PERSONA, budget_usd=budget_usd)
        bus_seqs = [e.seq for e in await app.bus.replay(result.task_id)]
        recorded = await app.store.list_events(result.task_id)
    assert result.repo is not None, result
    return NotebookTask(
        result=result,
        received=recorded,
        bus_seqs=bus_seqs,
        home=home,
        repo=Path(result.repo),
        executed=sorted((home / "state" / "runs" / result.task_id).glob("*.ipynb")),
        parent_pid=os.getpid(),
    )


@pytest.fixture(scope="module")
def notebook_task(tmp_path_factory: pytest.TempPathFactory) -> NotebookTask:
    """ONE whole task through the notebook runner (a kernel start is slow): every test below
    checks one behaviour of it."""
    home = tmp_path_factory.mktemp("notebook-home")
    return asyncio.run(_run_through_notebook(home))


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    ).stdout


def _finished(task: NotebookTask) -> Event:
    return next(e for e in task.received if e.type == RUN_FINISHED)


def test_a_whole_offline_task_completes_with_the_build_in_the_notebook(
    notebook_task: NotebookTask,
) -> None:
    assert notebook_task.result.status == "completed", notebook_task.result.error
    assert _finished(notebook_task).payload["outcome"] == "ok"


def test_the_notebook_really_ran_in_another_process_kernel(notebook_task: NotebookTask) -> None:
    (executed,) = notebook_task.executed
    cells = {c["id"]: c for c in json.loads(executed.read_text(encoding="utf-8"))["cells"]}
    assert all(
        cells[name]["execution_count"] for name in ("parameters", "install", "config", "run")
    )
    summary = "".join(o.get("text", "") for o in cells["results"]["outputs"])
    assert f"task {notebook_task.result.task_id}" in summary
    assert ": ok" in summary
    assert _finished(notebook_task).payload["pid"] != notebook_task.parent_pid


def test_the_master_receives_every_event_in_order_without_gaps(
    notebook_task: NotebookTask,
) -> None:
    seqs = [e.seq for e in notebook_task.received]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs == notebook_task.bus_seqs
    types = [e.type for e in notebook_task.received]
    for expected in (RUN_LAUNCHED, "build.started", "module.completed", "draft.ready"):
        assert expected in types
    assert types.index(RUN_FINISHED) < types.index("quality.judged") < types.index("task.completed")


def test_the_notebook_run_module_events_reach_the_master(notebook_task: NotebookTask) -> None:
    completed = {e.module_id for e in notebook_task.received if e.type == "module.completed"}
    spec = json.loads((notebook_task.repo / "spec.json").read_text(encoding="utf-8"))
    assert completed == {m["id"] for m in spec["plan"]["modules"]}


def test_the_deliverable_and_module_outputs_land_in_the_task_repo(
    notebook_task: NotebookTask,
) -> None:
    tracked = set(_git(notebook_task.repo, "ls-tree", "-r", "--name-only", "HEAD").split())
    spec = json.loads((notebook_task.repo / "spec.json").read_text(encoding="utf-8"))
    outputs = {f"outputs/{m['id']}.json" for m in spec["plan"]["modules"]} | {"outputs/draft.md"}
    assert {"deliverable.md", "notebook.ipynb", "spec.json", "persona.yaml", "run.json"} <= tracked
    assert outputs <= tracked
    committed = _git(notebook_task.repo, "show", "HEAD:deliverable.md")
    assert committed == (notebook_task.repo / "deliverable.md").read_text(encoding="utf-8")


def test_no_canary_reaches_the_repo_the_notebook_the_events_or_the_logs(
    notebook_task: NotebookTask,
) -> None:
    repo = notebook_task.repo
    history = _git(repo, "log", "--all", "-p", "--format=%H %an %ae %s%n%b")
    sinks = {
        "git history": history,
        "executed notebook": "".join(p.read_text(encoding="utf-8") for p in notebook_task.executed),
        "events": json.dumps([e.model_dump(mode="json") for e in notebook_task.received]),
        "log": (notebook_task.home / "state" / "agentfirm.log").read_text(encoding="utf-8"),
    }
    for path in repo.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            sinks[str(path.relative_to(repo))] = path.read_text(encoding="utf-8", errors="replace")
    for raw in (notebook_task.home / "data").glob("*.db*"):
        sinks[raw.name] = raw.read_bytes().decode("latin-1")
    assert sinks["log"], "the notebook's process logged nothing: the scan would prove nothing"
    leaks = [
        (sink, name) for sink, text in sinks.items() for name, v in CANARIES.items() if v in text
    ]
    assert leaks == []


async def test_a_budget_stop_in_the_notebook_ends_the_task_as_budget_exhausted(
    tmp_path: Path,
) -> None:
    # The notebook's budget gate asks over the bus; the Master declines (--yes) on the control
    # stream; the notebook aborts its build and says so: the same end as in process.
    task = await _run_through_notebook(tmp_path / "home", budget_usd="0.05")

    assert task.result.status == "budget_exhausted"
    types = [e.type for e in task.received]
    assert types.index("budget.exceeded") < types.index("build.aborted")
    assert _finished(task).payload["outcome"] == "aborted"


# ---------------------------------------------------------------------------- colab
@dataclass
class ColabRound:
    url: str
    markdown: str
    remote_result: remote.RemoteResult
    launched: list[Event]
    github: FakeGitHub
    full_name: str
    stitched: str


@dataclass
class GitHubTask:
    """An approved, handed-off task whose repo is on the loopback GitHub."""

    app: App
    repos: RepoBackend
    spec: TaskSpec
    location: str
    full_name: str
    env: dict[str, str]
    settings: Settings


@contextlib.asynccontextmanager
async def _github_task(tmp_path: Path, github: FakeGitHub) -> AsyncIterator[GitHubTask]:
    env = github_env(tmp_path / "home", github)
    settings = load_settings(env)
    redactor = Redactor()
    secrets = SecretStore(redactor, env=env, backend=NullKeyring())
    app = await App.open(settings, redactor=redactor, secrets=secrets)
    async with app:
        repos = repos_for(settings, secrets)
        master = MasterAgent(
            store=app.store,
            bus=app.bus,
            build=BuildMaster(store=app.store, bus=app.bus, router=app.router),
            personas=app.personas,
            pricing=app.router,
            repos=repos,
            decider=AutoDecider(),
            locks=app.locks,
        )
        task = await master.intake(REQUEST, persona=PERSONA)
        spec, estimate = await master.plan(task)
        spec = spec.model_copy(update={"budget_nano": estimate.suggested_budget_nano()})
        await app.store.set_budget(task.id, spec.budget_nano)
        published = await publish_task_repo(repos, spec, persona=app.personas.get(PERSONA))
        task = await app.store.get_task(task.id)
        task.repo_path, task.spec = published.location, spec
        await app.store.save_task(task)
        yield GitHubTask(
            app=app,
            repos=repos,
            spec=spec,
            location=published.location,
            full_name=f"alice/agentfirm-{task.id}",
            env=env,
            settings=settings,
        )


async def _colab_round(tmp_path: Path, github: FakeGitHub) -> ColabRound:
    async with _github_task(tmp_path, github) as task:
        app = task.app
        link: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        runner = ColabRunner(
            store=app.store, bus=app.bus, repos=task.repos, on_launch=link.set_result
        )

        async def someone_runs_the_notebook_in_colab() -> remote.RemoteResult:
            await link
            spec_path = await remote.locate_spec(
                task.location, dest=tmp_path / "colab", env=task.env
            )
            return await remote.run_spec(
                spec_path, repo=task.location, env=task.env, configure_logs=False
            )

        markdown, remote_result = await asyncio.gather(
            runner.execute(task.spec), someone_runs_the_notebook_in_colab()
        )
        events = await app.bus.replay(task.spec.task_id)
    return ColabRound(
        url=link.result(),
        markdown=markdown,
        remote_result=remote_result,
        launched=[e for e in events if e.type == RUN_LAUNCHED],
        github=github,
        full_name=task.full_name,
        stitched=github.files(task.full_name)["outputs/draft.md"].decode(),
    )


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub({"gh-test-token": "alice"}) as fake:
        yield fake


async def test_colab_runner_announces_the_documented_link_on_the_bus(
    tmp_path: Path, github: FakeGitHub
) -> None:
    colab = await _colab_round(tmp_path, github)

    name = colab.full_name.split("/")[1]
    expected = f"https://colab.research.google.com/github/alice/{name}/blob/main/notebook.ipynb"
    assert colab.url == expected
    assert [e.payload["url"] for e in colab.launched] == [expected]


async def test_colab_runner_returns_the_draft_the_colab_run_stitched(
    tmp_path: Path, github: FakeGitHub
) -> None:
    colab = await _colab_round(tmp_path, github)

    assert colab.remote_result.ok, colab.remote_result.error
    assert colab.markdown == colab.stitched


async def test_colab_run_pushes_its_module_outputs_in_one_commit(
    tmp_path: Path, github: FakeGitHub
) -> None:
    colab = await _colab_round(tmp_path, github)

    history = github.history(colab.full_name)
    assert [" ".join(c["message"].split()[:2]) for c in history] == [
        "agentfirm: outputs",
        "agentfirm: run",
        "agentfirm: hand-off",
    ]
    files = github.files(colab.full_name)
    assert set(colab.remote_result.outputs) <= set(files)
    assert set(colab.remote_result.outputs) == {
        p for p in files if p.startswith("outputs/") and p != "outputs/README.md"
    }


async def test_the_notebook_runner_runs_a_github_task_repo_as_colab_would(
    tmp_path: Path, github: FakeGitHub
) -> None:
    # The kernel fetches spec.json from GitHub and pushes its outputs back: the Colab path, here.
    async with _github_task(tmp_path, github) as task:
        runner = NotebookRunner(
            store=task.app.store,
            bus=task.app.bus,
            repos=task.repos,
            settings=task.settings,
            env=task.env,
        )

        markdown = await runner.execute(task.spec)

        assert markdown == github.files(task.full_name)["outputs/draft.md"].decode()
        assert github.history(task.full_name)[0]["message"].startswith("agentfirm: outputs")


async def test_cancelling_a_notebook_run_shuts_its_kernel_down(tmp_path: Path) -> None:
    source = "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code",
                "id": "wait",
                "metadata": {},
                "source": source,
                "outputs": [],
                "execution_count": None,
            }
        ],
    }
    run = KernelRun(
        notebook, workdir=tmp_path, env=dict(os.environ), startup_timeout_s=60, cell_timeout_s=None
    )
    running = asyncio.create_task(run.run())
    async with asyncio.timeout(60):  # a guard, not a timing assertion
        # The kernel is another process: its file is the only signal there is to wait for.
        while not (tmp_path / "pid").exists():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    kernel_pid = int((tmp_path / "pid").read_text())

    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running

    with pytest.raises(ProcessLookupError):
        os.kill(kernel_pid, 0)
