"""The task notebook and the task repo's files: valid, complete, deterministic, never a secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import nbformat
import pytest

from agentfirm.domain import TaskSpec
from agentfirm.errors import BadInput
from agentfirm.handoff.notebook import (
    SECRET_NAMES,
    SKIP_INSTALL_ENV,
    NotebookParams,
    build_notebook,
    notebook_text,
    read_notebook,
)
from agentfirm.handoff.runners import runner_problems, settings_env
from agentfirm.handoff.task_repo import task_repo_files
from agentfirm.personas import PersonaLibrary
from agentfirm.secrets import KNOWN
from agentfirm.settings import load_settings

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


def test_cells_are_header_parameters_install_config_run_results(spec: TaskSpec) -> None:
    notebook = build_notebook(spec, NotebookParams(task_id=TASK))

    assert [(c["id"], c["cell_type"]) for c in notebook["cells"]] == [
        ("header", "markdown"),
        ("parameters", "code"),
        ("install", "code"),
        ("config", "code"),
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

    assert "from agentfirm.build import remote" in run
    assert "await remote.run_spec(" in run


def test_no_secret_value_enters_the_notebook_or_the_task_repo(
    spec: TaskSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {name: f"canary-{n}-8d6f4b2a0c" for n, name in enumerate(KNOWN)}
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    persona = PersonaLibrary.load().get("patent_research")
    params = NotebookParams(task_id=TASK, repo="https://github.com/acme/x", repo_backend="github")

    files = task_repo_files(spec, params=params, location=params.repo, persona=persona)

    text = "".join(files.values())
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
