"""What a task repo holds, and what a run of its notebook exchanges with the Master Agent.

At hand-off the repo gets, in ONE commit: ``README.md`` (what, status, links), ``spec.json``, the
persona (``persona.yaml``), the notebook (``notebook.ipynb``), ``requirements.txt`` (how the
notebook installs agentfirm) and ``outputs/`` (module artifacts land there). Each run adds
``run.json`` (which run, the revision notes); the notebook answers with one ``runner.finished``
event on the bus. Nothing here is ever a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from agentfirm.domain import TaskSpec
from agentfirm.handoff.github import DEFAULT_API_URL, GitHubRepos
from agentfirm.handoff.notebook import NotebookParams, build_notebook, notebook_text
from agentfirm.handoff.repos import RepoBackend
from agentfirm.money import nano_to_float
from agentfirm.persona_model import Persona

README_PATH = "README.md"
SPEC_PATH = "spec.json"
PERSONA_PATH = "persona.yaml"
NOTEBOOK_PATH = "notebook.ipynb"
REQUIREMENTS_PATH = "requirements.txt"
RUN_PATH = "run.json"
OUTPUTS_DIR = "outputs"

RUN_LAUNCHED = "runner.launched"
"""Event: a runner started a run (``{run_id, runner, url?}``); front ends show the Colab link."""
RUN_FINISHED = "runner.finished"
"""Event: the notebook's build ended (a ``RunFinished`` payload)."""

Outcome = Literal["ok", "aborted", "failed", "budget_exceeded", "error"]


class RunRequest(BaseModel):
    """``run.json``: one run of the task notebook, written by the runner before it starts it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    runner: str = "notebook"
    notes: str = ""
    """Revision notes for the modules a review sent back (empty on the first run)."""


class RunFinished(BaseModel):
    """The ``runner.finished`` payload: how the notebook's build ended."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    outcome: Outcome
    error: str = ""
    module_id: str | None = None
    budget: dict[str, float] | None = None
    """``{needed_usd, spent_usd, ceiling_usd}`` when the outcome is ``budget_exceeded``."""
    draft_version: int | None = None
    outputs: list[str] = Field(default_factory=list)
    outputs_commit: str | None = None
    outputs_error: str = ""
    host: str = ""
    pid: int = 0


@dataclass(frozen=True)
class PublishedRepo:
    """A handed-off task repo: where it is, the hand-off commit, and how to launch it."""

    location: str
    commit: str
    notebook_path: str
    launch_url: str | None
    """The Colab URL for GitHub repos; ``None`` for local ones (run them here)."""


def readme(
    spec: TaskSpec,
    *,
    status: str,
    location: str,
    launch_url: str | None = None,
    deliverable: bool = False,
) -> str:
    """The task repo's README: what was asked, the status, and links."""
    links = [f"- Task repo: {location}", f"- Notebook: [`{NOTEBOOK_PATH}`]({NOTEBOOK_PATH})"]
    if launch_url:
        links.insert(0, f"- [Open in Colab]({launch_url})")
    if deliverable:
        links.append("- Deliverable: [`deliverable.md`](deliverable.md)")
    modules = "\n".join(
        f"- `{m.id}` ({m.tier}): {m.title or m.brief or m.id}" for m in spec.plan.modules
    )
    request = "\n".join(f"> {line}" for line in spec.request.splitlines() or [""])
    return f"""# agentfirm task {spec.task_id}

{request}

- **Status:** {status}
- **Persona:** {spec.persona_name or spec.persona} (`{PERSONA_PATH}`)
- **Budget:** ${nano_to_float(spec.budget_nano):.2f}

## Links

{chr(10).join(links)}

## Modules

{modules}

## Files

- `{SPEC_PATH}`: the approved spec the Build Master runs
- `{NOTEBOOK_PATH}`: runs the Build Master (Colab, or `agentfirm run --runner notebook`)
- `{REQUIREMENTS_PATH}`: what the notebook installs
- `{OUTPUTS_DIR}/`: module outputs, one JSON file per module, and the draft

No key or token is stored here: the notebook reads them from Colab's secret store or the
environment when it runs.
"""


def persona_yaml(persona: Persona) -> str:
    """The persona as YAML, in the shape of a persona file."""
    data: dict[str, Any] = persona.model_dump(mode="json", exclude_defaults=False)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def task_repo_files(
    spec: TaskSpec,
    *,
    params: NotebookParams,
    location: str,
    persona: Persona | None = None,
    launch_url: str | None = None,
) -> dict[str, str]:
    """Every file of a handed-off task repo, by path."""
    files = {
        README_PATH: readme(spec, status="handed off", location=location, launch_url=launch_url),
        SPEC_PATH: spec.model_dump_json(indent=2) + "\n",
        NOTEBOOK_PATH: notebook_text(build_notebook(spec, params)),
        REQUIREMENTS_PATH: params.effective_requirement() + "\n",
        f"{OUTPUTS_DIR}/README.md": (
            "Module outputs of this task's runs: `<module>.json` per module and `draft.md`.\n"
        ),
    }
    if persona is not None:
        files[PERSONA_PATH] = persona_yaml(persona)
    return files


async def publish_task_repo(
    repos: RepoBackend,
    spec: TaskSpec,
    *,
    persona: Persona | None = None,
    requirement: str = "",
) -> PublishedRepo:
    """Create the task's repo and commit its hand-off files in ONE commit. For GitHub repos the
    result carries the Colab launch URL. ``requirement``: how the notebook installs agentfirm
    (default: this version from the package index). Raises what ``repos.create`` raises
    (``BadInput`` for a taken name or a bad token) before anything is written."""
    location = await repos.create(spec.task_id)
    launch_url: str | None = None
    if isinstance(repos, GitHubRepos):
        params = NotebookParams(
            task_id=spec.task_id,
            repo=location,
            repo_backend="github",
            github_owner=repos.owner,
            github_api_url=None if repos.api_url == DEFAULT_API_URL else repos.api_url,
            requirement=requirement,
        )
        launch_url = await repos.launch_url(location, NOTEBOOK_PATH)
    else:
        params = NotebookParams(task_id=spec.task_id, requirement=requirement)
    files = task_repo_files(
        spec, params=params, location=location, persona=persona, launch_url=launch_url
    )
    await repos.write_files(location, files)
    sha = await repos.commit(location, f"agentfirm: hand-off of task {spec.task_id}")
    return PublishedRepo(
        location=location, commit=sha, notebook_path=NOTEBOOK_PATH, launch_url=launch_url
    )
