"""The task notebook and the task repo's files: valid, complete, deterministic, never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import nbformat
import pytest

from agentfirm import __version__
from agentfirm.domain.models import TaskSpec
from agentfirm.errors import BadInput
from agentfirm.handoff.github import GitHubRepos
from agentfirm.handoff.notebook import (
    SECRET_NAMES,
    SKIP_INSTALL_ENV,
    NotebookParams,
    build_notebook,
    notebook_text,
    read_notebook,
)
from agentfirm.handoff.task_repo import task_repo_files
from agentfirm.handoff.wheel import Wheel, running_wheel
from agentfirm.personas.library import PersonaLibrary
from agentfirm.runs.base import settings_env
from agentfirm.runs.choice import runner_problems
from agentfirm.runs.colab import colab_secrets
from agentfirm.secrets import KNOWN
from agentfirm.settings import load_settings
from tests.fakes.github import FakeGitHub

TASK = "t_nb0001"


@pytest.fixture
def spec() -> TaskSpec:
    persona = PersonaLibrary.load().get("patent_research")
    return TaskSpec(
        task_id=TASK,
        request="Prior art search for a self-healing solder alloy\nwith a claim chart",
        persona=persona.id,
        persona_name=persona.name,
        plan=persona.to_plan(),
        quality_checklist=list(persona.quality_checklist),
        budget_nano=2_500_000_000,
    )


def _cells(notebook: dict[str, Any]) -> dict[str, str]:
    return {cell["id"]: "".join(cell["source"]) for cell in notebook["cells"]}


def _run_cells(notebook: dict[str, Any], *ids: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    for cell_id in ids:
        exec(_cells(notebook)[cell_id], namespace)
    return namespace


def test_the_notebook_validates_against_the_nbformat_schema(spec: TaskSpec) -> None:
    notebook = build_notebook(spec, NotebookParams(task_id=TASK))

    nbformat.validate(nbformat.reads(notebook_text(notebook), as_version=4))


def test_cells_are_header_parameters_config_install_run_results(spec: TaskSpec) -> None:
    notebook = build_notebook(spec, NotebookParams(task_id=TASK))

    # Keys before the install: fetching the wheel from a private GitHub repo needs the token.
    assert [(c["id"], c["cell_type"]) for c in notebook["cells"]] == [
        ("header", "markdown"),
        ("parameters", "code"),
        ("config", "code"),
        ("install", "code"),
        ("run", "code"),
        ("results", "code"),
    ]


def test_the_header_shows_task_modules_waves_and_budget(spec: TaskSpec) -> None:
    header = _cells(build_notebook(spec, NotebookParams(task_id=TASK)))["header"]

    assert TASK in header
    assert "> with a claim chart" in header
    assert "$2.50" in header
    for module in spec.plan.modules:
        assert f"`{module.id}`" in header
    assert "1. `feature_breakdown`, `prior_art_search`, `non_patent_literature_search`" in header


def test_the_same_spec_gives_the_same_notebook_text(spec: TaskSpec) -> None:
    params = NotebookParams(task_id=TASK)

    assert notebook_text(build_notebook(spec, params)) == notebook_text(
        build_notebook(spec, params)
    )


def test_the_parameters_cell_holds_the_given_values(spec: TaskSpec) -> None:
    params = NotebookParams(
        task_id=TASK,
        repo='https://github.com/acme/agentfirm-t_nb0001"',
        repo_backend="github",
        github_owner="acme",
        requirement="agentfirm @ https://example.org/agentfirm-0.1.0-py3-none-any.whl",
    )

    values = _run_cells(build_notebook(spec, params), "parameters")

    assert values["TASK_ID"] == TASK
    assert values["REPO"] == params.repo
    assert (values["REPO_BACKEND"], values["GITHUB_OWNER"]) == ("github", "acme")
    assert values["GITHUB_API_URL"] is None
    assert values["AGENTFIRM_REQUIREMENT"] == params.requirement


def test_the_install_cell_installs_nothing_when_the_kernel_already_runs_agentfirm(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SKIP_INSTALL_ENV, "1")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"pip ran: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)

    _run_cells(build_notebook(spec, NotebookParams(task_id=TASK)), "parameters", "install")


def test_the_install_cell_pip_installs_the_requirement_elsewhere(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SKIP_INSTALL_ENV, raising=False)
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    params = NotebookParams(task_id=TASK, requirement="agentfirm==9.9.9")

    _run_cells(build_notebook(spec, params), "parameters", "install")

    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", "agentfirm==9.9.9"]]


def test_the_config_cell_reads_keys_from_colab_userdata_and_prints_only_names(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES}
    monkeypatch.setattr(os, "environ", environ)
    store = {"ANTHROPIC_API_KEY": "canary-colab-anthropic-31415"}

    def get(name: str) -> str:
        if name not in store:
            raise KeyError(name)  # Colab raises SecretNotFoundError
        return store[name]

    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=get)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    params = NotebookParams(task_id=TASK, repo_backend="github", github_owner="acme")

    _run_cells(build_notebook(spec, params), "parameters", "config")

    assert environ["ANTHROPIC_API_KEY"] == "canary-colab-anthropic-31415"
    assert environ["AGENTFIRM_REPO_BACKEND"] == "github"
    assert environ["AGENTFIRM_GITHUB_OWNER"] == "acme"
    printed = capsys.readouterr().out
    assert "ANTHROPIC_API_KEY" in printed
    assert "canary" not in printed


def test_the_config_cell_keeps_keys_already_in_the_environment(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    environ = {"OPENAI_API_KEY": "from-the-env-value"}
    monkeypatch.setattr(os, "environ", environ)
    monkeypatch.setitem(sys.modules, "google.colab", None)  # not in Colab: ImportError

    _run_cells(build_notebook(spec, NotebookParams(task_id=TASK)), "parameters", "config")

    assert environ["OPENAI_API_KEY"] == "from-the-env-value"


def test_the_run_cell_runs_the_build_master_through_remote(spec: TaskSpec) -> None:
    run = _cells(build_notebook(spec, NotebookParams(task_id=TASK)))["run"]

    assert "from agentfirm.runs import remote" in run
    assert "await remote.run_spec(" in run


def test_no_secret_value_enters_the_notebook_or_the_task_repo(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {name: f"canary-{n}-8d6f4b2a0c" for n, name in enumerate(KNOWN)}
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    persona = PersonaLibrary.load().get("patent_research")
    wheel = running_wheel()
    params = NotebookParams(
        task_id=TASK,
        repo="https://github.com/acme/x",
        repo_backend="github",
        wheel=wheel.repo_path,
        wheel_sha256=wheel.sha256,
    )

    files = task_repo_files(spec, params=params, location=params.repo, persona=persona, wheel=wheel)

    contents = [v if isinstance(v, bytes) else v.encode() for v in files.values()]
    with zipfile.ZipFile(io.BytesIO(wheel.data)) as archive:
        contents += [archive.read(name) for name in archive.namelist()]
    text = b"".join(contents).decode("utf-8", "replace")
    assert [name for name, value in canaries.items() if value in text] == []
    assert all(name in text for name in ("ANTHROPIC_API_KEY", "GITHUB_TOKEN"))


def test_the_task_repo_holds_readme_spec_persona_notebook_requirements_and_outputs(
    spec: TaskSpec,
) -> None:
    persona = PersonaLibrary.load().get("patent_research")
    params = NotebookParams(task_id=TASK, requirement="agentfirm==1.2.3")

    files = task_repo_files(spec, params=params, location="/repos/t", persona=persona)

    assert set(files) == {
        "README.md",
        "spec.json",
        "persona.yaml",
        "notebook.ipynb",
        "requirements.txt",
        "outputs/README.md",
    }
    assert TaskSpec.model_validate_json(files["spec.json"]) == spec
    assert files["requirements.txt"] == "agentfirm==1.2.3\n"
    read_notebook(files["notebook.ipynb"])


def test_by_default_the_task_repo_carries_the_running_agentfirm_as_a_wheel(
    spec: TaskSpec,
) -> None:
    wheel = running_wheel()
    params = NotebookParams(task_id=TASK, wheel=wheel.repo_path, wheel_sha256=wheel.sha256)

    files = task_repo_files(spec, params=params, location="/repos/t", wheel=wheel)

    assert files[f"wheels/agentfirm-{__version__}-py3-none-any.whl"] == wheel.data
    assert files["requirements.txt"] == (
        f"./wheels/agentfirm-{__version__}-py3-none-any.whl  # sha256 {wheel.sha256}\n"
    )
    values = _run_cells(build_notebook(spec, params), "parameters")
    assert (values["AGENTFIRM_WHEEL"], values["AGENTFIRM_WHEEL_SHA256"]) == (
        wheel.repo_path,
        wheel.sha256,
    )


def test_a_repo_with_neither_wheel_nor_requirement_is_refused(spec: TaskSpec) -> None:
    with pytest.raises(BadInput, match="no way to install agentfirm"):
        task_repo_files(spec, params=NotebookParams(task_id=TASK), location="/repos/t")


def test_the_wheel_is_the_same_bytes_every_time_and_holds_every_package() -> None:
    first, second = running_wheel(), running_wheel()

    assert first.data == second.data
    with zipfile.ZipFile(io.BytesIO(first.data)) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"agentfirm-{__version__}.dist-info/METADATA").decode()
        record = archive.read(f"agentfirm-{__version__}.dist-info/RECORD").decode()
    for module in (
        "agentfirm/cli/app.py",
        "agentfirm/daemon/server.py",
        "agentfirm/tui/app.py",
        "agentfirm/persona_templates/patent_research.yaml",
        "agentfirm/store/migrations/0001_init.sql",
    ):
        assert module in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "Requires-Dist: pydantic>=2.7" in metadata
    assert "pytest" not in metadata  # extras stay out of a kernel
    assert len(record.splitlines()) == len(names)


def _wheel_params(wheel: Wheel, **extra: Any) -> NotebookParams:
    return NotebookParams(task_id=TASK, wheel=wheel.repo_path, wheel_sha256=wheel.sha256, **extra)


def test_the_install_cell_installs_the_repos_wheel_after_checking_its_hash(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(SKIP_INSTALL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    wheel = running_wheel()
    (tmp_path / "wheels").mkdir()
    (tmp_path / wheel.repo_path).write_bytes(wheel.data)
    installed: list[bytes] = []
    monkeypatch.setattr(
        subprocess, "run", lambda cmd, **kw: installed.append(Path(cmd[-1]).read_bytes())
    )

    _run_cells(build_notebook(spec, _wheel_params(wheel)), "parameters", "install")

    assert installed == [wheel.data]


def test_the_install_cell_refuses_a_wheel_that_does_not_match_its_hash(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(SKIP_INSTALL_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    wheel = running_wheel()
    (tmp_path / "wheels").mkdir()
    (tmp_path / wheel.repo_path).write_bytes(wheel.data + b"tampered")
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: pytest.fail(f"pip ran: {cmd}"))

    with pytest.raises(RuntimeError, match="does not match its recorded hash"):
        _run_cells(build_notebook(spec, _wheel_params(wheel)), "parameters", "install")


async def test_the_install_cell_fetches_the_wheel_from_github_with_the_token(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SKIP_INSTALL_ENV, raising=False)
    wheel = running_wheel()
    with FakeGitHub({"tok-1": "ada"}) as github:
        repos = GitHubRepos(token=lambda: "tok-1", owner="ada", api_url=github.url)
        location = await repos.create(TASK)
        await repos.write_files(location, {wheel.repo_path: wheel.data})
        await repos.commit(location, "hand-off")
        monkeypatch.setenv("GITHUB_TOKEN", "tok-1")
        installed: list[bytes] = []
        monkeypatch.setattr(
            subprocess, "run", lambda cmd, **kw: installed.append(Path(cmd[-1]).read_bytes())
        )
        params = _wheel_params(
            wheel, repo=location, repo_backend="github", github_api_url=github.url
        )

        await asyncio.to_thread(_run_cells, build_notebook(spec, params), "parameters", "install")

    assert installed == [wheel.data]
    fetched = [r for r in github.requests if "/contents/" in r.path]
    assert [{k.lower(): v for k, v in r.headers.items()}["authorization"] for r in fetched] == [
        "Bearer tok-1"
    ]


def test_read_notebook_refuses_what_is_not_a_notebook() -> None:
    with pytest.raises(BadInput, match="not a valid notebook"):
        read_notebook(json.dumps({"cells": "no"}))


def test_notebook_parameters_must_match_the_spec(spec: TaskSpec) -> None:
    with pytest.raises(BadInput, match="t_other"):
        build_notebook(spec, NotebookParams(task_id="t_other"))


def test_the_kernel_gets_the_callers_settings_back_exactly(tmp_path: Path) -> None:
    env = {
        "AGENTFIRM_HOME": str(tmp_path),
        "AGENTFIRM_OFFLINE": "1",
        "AGENTFIRM_MAX_CONCURRENCY": "7",
        "AGENTFIRM_TIERS__REASONING": '["offline:claude-opus-4-5"]',
        "AGENTFIRM_PRICES": '{"offline:x": {"input_per_mtok": 1, "output_per_mtok": 2}}',
    }
    settings = load_settings(env)

    assert load_settings(settings_env(settings)) == settings


def test_the_colab_runner_needs_github_repos_and_shared_backends(tmp_path: Path) -> None:
    settings = load_settings({"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_RUNNER": "colab"})

    problems = runner_problems(settings)

    assert len(problems) == 2
    assert "AGENTFIRM_REPO_BACKEND=github" in problems[0]
    assert "AGENTFIRM_REDIS_URL" in problems[1]


def test_the_colab_runner_is_fine_with_github_postgres_and_redis(tmp_path: Path) -> None:
    env = {
        "AGENTFIRM_HOME": str(tmp_path),
        "AGENTFIRM_REPO_BACKEND": "github",
        "AGENTFIRM_DATABASE_URL": "postgresql://u@db.example/agentfirm",
        "AGENTFIRM_REDIS_URL": "redis://cache.example:6379/0",
    }

    assert runner_problems(load_settings(env), "colab") == []
    assert runner_problems(load_settings({"AGENTFIRM_HOME": str(tmp_path)}), "notebook") == []


def test_a_colab_launch_names_the_secrets_colab_needs_the_keys_this_machine_uses(
    tmp_path: Path,
) -> None:
    online = load_settings({"AGENTFIRM_HOME": str(tmp_path)})
    offline = load_settings({"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_OFFLINE": "1"})

    def held(name: str) -> bool:
        return name == "ANTHROPIC_API_KEY"

    shared = ["GITHUB_TOKEN", "AGENTFIRM_DATABASE_URL", "AGENTFIRM_REDIS_URL"]
    assert colab_secrets(online, held) == [*shared, "ANTHROPIC_API_KEY"]
    assert colab_secrets(offline, held) == shared
