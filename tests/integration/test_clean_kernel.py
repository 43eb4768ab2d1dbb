"""A clean kernel runs a task from its repo alone, as on Colab (issue 22).

The kernel is a venv that holds ipykernel and nothing of agentfirm: the notebook installs agentfirm
from the wheel committed with the task repo (its dependencies come from the package index, as on
Colab), reads its keys from the environment, runs the Build Master against the real PostgreSQL and
Redis the daemon side uses, and its events and outputs come back. Once with the notebook opened
from the loopback GitHub server (the Colab path: nothing cloned), once in a clone of a local task
repo. Slow by nature (a pip install of agentfirm's dependencies), so both share one venv.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from keyring.backends.null import Keyring as NullKeyring

from agentfirm.app import App
from agentfirm.domain.models import Event
from agentfirm.handoff.notebook import read_notebook
from agentfirm.handoff.task_repo import RUN_FINISHED, publish_task_repo
from agentfirm.master.decisions import AutoDecider
from agentfirm.runs.kernel import KernelRun
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from tests.fakes.github import FakeGitHub

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

PERSONA = "incident_postmortem"
REQUEST = "Postmortem of the checkout outage: impact, change history and the root cause"
MARKER = "quokka7741"
# Words the incident modules' briefs and the request share, so a search from either finds it.
BRIEF = f"""Incident record {MARKER}: the checkout outage.

The outage began with a deploy of the payments service and a configuration change to its
connection pool. Impact: customers and requests failed in every region for 47 minutes; errors
and latency broke the SLO. Change history: the deploy, a feature flag, earlier incidents with
the same cause. Root cause: the pool limit change.
"""
_SCRUB = ("AGENTFIRM_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "GITHUB_", "SLACK_")
TOKEN = "gh-clean-kernel-token"


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A venv with ipykernel and nothing else: the interpreter of a kernel that never saw
    agentfirm."""
    venv = tmp_path_factory.mktemp("clean-kernel") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "ipykernel"],
        check=True,
        timeout=900,
    )
    return python


def _without_agentfirm(python: str) -> None:
    """Whatever an earlier test installed, this kernel starts without agentfirm."""
    subprocess.run(
        [python, "-m", "pip", "uninstall", "--yes", "--quiet", "agentfirm"],
        capture_output=True,
        check=False,
    )
    probe = subprocess.run(
        [python, "-c", "import agentfirm"], cwd=tempfile.gettempdir(), capture_output=True
    )
    assert probe.returncode != 0, "the clean kernel can import agentfirm before the notebook runs"


def _env(home: Path, pg_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.pop("PYTHONPATH", None)  # the kernel must not find this checkout
    env.update(
        AGENTFIRM_HOME=str(home),
        AGENTFIRM_DATABASE_URL=pg_url,
        AGENTFIRM_REDIS_URL=redis_url,
        AGENTFIRM_OFFLINE="1",
        AGENTFIRM_QUALITY_REVISION="false",
        PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring",
        **extra,
    )
    return env


async def _open(env: dict[str, str]) -> App:
    redactor = Redactor()
    secrets = SecretStore(redactor, env=env, backend=NullKeyring())
    return await App.open(load_settings(env), redactor=redactor, secrets=secrets, env=env)


async def _run_in_clean_kernel(
    notebook: dict[str, Any], workdir: Path, env: dict[str, str], python: str
) -> None:
    await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
    executed, failure = await KernelRun(
        notebook,
        workdir=workdir,
        env=env,
        startup_timeout_s=180,
        cell_timeout_s=1200,
        python=python,
    ).run()
    install = next(c for c in executed["cells"] if c["id"] == "install")
    printed = "".join(o.get("text", "") for o in install["outputs"])
    assert failure is None, failure
    assert "agentfirm 0.1.0" in printed


def _research_found_the_attachment(events: list[Event]) -> bool:
    """A passage of the attached record, cited by the research desk (``record.md#N``), reached
    a module's model turn or a tool's answer during the build."""
    for event in events:
        if event.type in ("model.turn", "tool.called") or event.type.startswith("research."):
            text = json.dumps(event.payload)
            if "record.md#" in text and MARKER in text:
                return True
    return False


def _ran_elsewhere(events: list[Event]) -> bool:
    finished = [e for e in events if e.type == RUN_FINISHED]
    return bool(finished) and all(
        e.payload["outcome"] == "ok" and e.payload["pid"] != os.getpid() for e in finished
    )


async def test_a_clean_colab_kernel_runs_a_github_task_from_its_repo_alone(
    tmp_path: Path, pg_url: str, redis_url: str, clean_python: str
) -> None:
    _without_agentfirm(clean_python)
    brief = tmp_path / "record.md"
    brief.write_text(BRIEF, encoding="utf-8")
    with FakeGitHub({TOKEN: "alice"}) as github:
        daemon_env = _env(
            tmp_path / "daemon",
            pg_url,
            redis_url,
            AGENTFIRM_REPO_BACKEND="github",
            AGENTFIRM_GITHUB_API_URL=github.url,
            GITHUB_TOKEN=TOKEN,
        )
        app = await _open(daemon_env)
        async with app:
            launched: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            master = app.master(AutoDecider(), runner="colab", on_launch=launched.set_result)
            run = asyncio.create_task(master.run(REQUEST, persona=PERSONA, attachments=[brief]))
            await asyncio.wait_for(asyncio.shield(launched), 300)
            [full_name] = list(github.repos)
            # Colab opens the notebook alone, straight from GitHub; its secrets are set by hand.
            notebook = read_notebook(github.files(full_name)["notebook.ipynb"])
            kernel_env = _env(tmp_path / "colab-home", pg_url, redis_url, GITHUB_TOKEN=TOKEN)
            await _run_in_clean_kernel(notebook, tmp_path / "colab", kernel_env, clean_python)
            result = await asyncio.wait_for(run, 300)
            events = await app.bus.replay(result.task_id)

    assert result.status == "completed", result.error
    assert _ran_elsewhere(events)
    assert _research_found_the_attachment(events)
    history = github.history(full_name)
    outputs_commits = [c for c in history if c["message"].startswith("agentfirm: outputs")]
    assert len(outputs_commits) == 1
    files = github.files(full_name)
    modules = {e.module_id for e in events if e.type == "module.completed"}
    assert modules
    assert {f"outputs/{m}.json" for m in modules} <= set(files)
    assert "outputs/draft.md" in files


async def test_a_clean_kernel_runs_a_clone_of_a_local_task_repo_and_pushes_its_outputs(
    tmp_path: Path, pg_url: str, redis_url: str, clean_python: str
) -> None:
    _without_agentfirm(clean_python)
    brief = tmp_path / "record.md"
    brief.write_text(BRIEF, encoding="utf-8")
    app = await _open(_env(tmp_path / "daemon", pg_url, redis_url))
    async with app:
        master = app.master(AutoDecider())
        task = await master.intake(REQUEST, persona=PERSONA, attachments=[brief])
        spec, estimate = await master.plan(task)
        spec = spec.model_copy(update={"budget_nano": estimate.suggested_budget_nano()})
        await app.store.set_budget(task.id, spec.budget_nano)
        published = await publish_task_repo(
            app.repos, spec, persona=app.personas.get(PERSONA), attachments={"record.md": BRIEF}
        )
        origin = Path(published.location)
        clone = tmp_path / "elsewhere" / "clone"
        await asyncio.to_thread(
            subprocess.run,
            ["git", "clone", "--quiet", str(origin), str(clone)],
            check=True,
            capture_output=True,
        )
        notebook = read_notebook((clone / "notebook.ipynb").read_bytes())
        kernel_env = _env(
            tmp_path / "kernel-home",
            pg_url,
            redis_url,
            GIT_AUTHOR_NAME="colab",
            GIT_AUTHOR_EMAIL="colab@example.invalid",
            GIT_COMMITTER_NAME="colab",
            GIT_COMMITTER_EMAIL="colab@example.invalid",
        )
        await _run_in_clean_kernel(notebook, clone, kernel_env, clean_python)
        events = await app.bus.replay(task.id)
        done = await app.store.list_module_runs(task.id)

    assert _ran_elsewhere(events)
    assert _research_found_the_attachment(events)
    assert {r.module_id for r in done if r.status == "done"} == {m.id for m in spec.plan.modules}
    log = (
        await asyncio.to_thread(
            subprocess.run,
            ["git", "-C", str(origin), "log", "--format=%s", "--name-only", "-1"],
            capture_output=True,
            text=True,
            check=True,
        )
    ).stdout.split()
    assert " ".join(log[:4]) == "agentfirm: outputs of run"
    assert {f"outputs/{m.id}.json" for m in spec.plan.modules} | {"outputs/draft.md"} <= set(log)
    # The task repo's own tree follows the push.
    assert (origin / "outputs" / "draft.md").is_file()
