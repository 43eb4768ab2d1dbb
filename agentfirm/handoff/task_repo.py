"""What a task repo holds, and what a run of its notebook exchanges with the Master Agent.

At hand-off the repo gets, in ONE commit: ``README.md`` (what, status, links), ``spec.json``, the
persona (``persona.yaml``), the notebook (``notebook.ipynb``), ``requirements.txt`` (how the
notebook installs agentfirm), the wheel of the agentfirm that planned the task (``wheels/``), the
documents attached to the request (``attachments/``, so research finds them wherever the build
runs) and ``outputs/`` (module artifacts land there). Each run adds ``run.json`` (which run, the
revision notes); the notebook answers with one ``runner.finished`` event on the bus. At close the
repo gets the deliverable, every module's output, the draft and a README with the final status and
cost. Nothing here is ever a secret: every text file passes the redactor.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from agentfirm.build_master.attachments import Document
from agentfirm.domain.models import Artifact, TaskSpec
from agentfirm.handoff.github import DEFAULT_API_URL, GitHubRepos
from agentfirm.handoff.notebook import NotebookParams, build_notebook, notebook_text
from agentfirm.handoff.repos import LocalGitRepos, RepoBackend
from agentfirm.handoff.wheel import WHEELS_DIR, Wheel, running_wheel
from agentfirm.money import nano_to_float
from agentfirm.personas.model import Persona

README_PATH = "README.md"
SPEC_PATH = "spec.json"
PERSONA_PATH = "persona.yaml"
NOTEBOOK_PATH = "notebook.ipynb"
REQUIREMENTS_PATH = "requirements.txt"
RUN_PATH = "run.json"
OUTPUTS_DIR = "outputs"
ATTACHMENTS_DIR = "attachments"
ATTACHMENTS_MANIFEST = "attachments.json"
"""The names of the files in ``attachments/`` (a repo on GitHub cannot be listed cheaply)."""
DELIVERABLE_PATH = "deliverable.md"

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
    cost: str | None = None,
) -> str:
    """The task repo's README: what was asked, the status (and cost, once closed), and links."""
    links = [f"- Task repo: {location}", f"- Notebook: [`{NOTEBOOK_PATH}`]({NOTEBOOK_PATH})"]
    if launch_url:
        links.insert(0, f"- [Open in Colab]({launch_url})")
    if deliverable:
        links.insert(0, f"- Deliverable: [`{DELIVERABLE_PATH}`]({DELIVERABLE_PATH})")
    spent = f"\n- **Cost:** {cost}" if cost else ""
    modules = "\n".join(
        f"- `{m.id}` ({m.tier}): {m.title or m.brief or m.id}" for m in spec.plan.modules
    )
    request = "\n".join(f"> {line}" for line in spec.request.splitlines() or [""])
    return f"""# agentfirm task {spec.task_id}

{request}

- **Status:** {status}
- **Persona:** {spec.persona_name or spec.persona} (`{PERSONA_PATH}`)
- **Budget:** ${nano_to_float(spec.budget_nano):.2f}{spent}

## Links

{chr(10).join(links)}

## Modules

{modules}

## Files

- `{SPEC_PATH}`: the approved spec the Build Master runs
- `{NOTEBOOK_PATH}`: runs the Build Master (Colab, or `agentfirm run --runner notebook`)
- `{REQUIREMENTS_PATH}`: what the notebook installs (the wheel in `{WHEELS_DIR}/`, unless set)
- `{ATTACHMENTS_DIR}/`: the documents attached to the request, for the research agent
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
    wheel: Wheel | None = None,
    attachments: Mapping[str, str] | None = None,
) -> dict[str, str | bytes]:
    """Every file of a handed-off task repo, by path."""
    requirement = params.effective_requirement()
    if wheel is not None and not params.requirement:
        requirement += f"  # sha256 {wheel.sha256}"
    files: dict[str, str | bytes] = {
        README_PATH: readme(spec, status="handed off", location=location, launch_url=launch_url),
        SPEC_PATH: spec.model_dump_json(indent=2) + "\n",
        NOTEBOOK_PATH: notebook_text(build_notebook(spec, params)),
        REQUIREMENTS_PATH: requirement + "\n",
        f"{OUTPUTS_DIR}/README.md": (
            "Module outputs of this task's runs: `<module>.json` per module and `draft.md`.\n"
        ),
    }
    if wheel is not None:
        files[wheel.repo_path] = wheel.data
    for name, text in (attachments or {}).items():
        files[f"{ATTACHMENTS_DIR}/{name}"] = text
    if attachments:
        files[ATTACHMENTS_MANIFEST] = json.dumps({"documents": sorted(attachments)}) + "\n"
    if persona is not None:
        files[PERSONA_PATH] = persona_yaml(persona)
    return files


async def restore_task_repo(
    repos: RepoBackend, spec: TaskSpec, location: str, *, persona: Persona | None = None
) -> PublishedRepo | None:
    """Write a local task repo that was deleted while its task ran again, from the spec (the
    hand-off files, in one commit); None when it is still there. Module outputs live in the
    store, and the deliverable is committed at the close, so nothing else is missing."""
    if not isinstance(repos, LocalGitRepos) or not await repos.lost(location):
        return None
    return await publish_task_repo(repos, spec, persona=persona)


def closing_files(
    spec: TaskSpec,
    *,
    location: str,
    deliverable: str,
    draft: str,
    outputs: Mapping[str, Artifact],
    quality: Mapping[str, Any],
    costs: Mapping[str, Any],
) -> dict[str, str | bytes]:
    """What the closing commit writes, whichever runner built the task: the deliverable, its
    quality report and costs, every module's output and the draft, and the README's final word."""
    total = float(costs.get("total_usd") or 0)
    cost = f"${total:.4f}" + (" (simulated)" if costs.get("simulated") else "")
    files: dict[str, str | bytes] = {
        DELIVERABLE_PATH: deliverable,
        "quality.json": json.dumps(quality, indent=2) + "\n",
        "costs.json": json.dumps(costs, indent=2) + "\n",
        f"{OUTPUTS_DIR}/draft.md": draft,
        README_PATH: readme(
            spec, status="completed", location=location, deliverable=True, cost=cost
        ),
    }
    for module in spec.plan.modules:
        if module.id in outputs:
            files[f"{OUTPUTS_DIR}/{module.id}.json"] = module_output_json(outputs[module.id])
    return files


def module_output_json(artifact: Artifact) -> str:
    """``outputs/<module>.json``: one module's artifact as the task repo keeps it."""
    return json.dumps(artifact.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


async def publish_task_repo(
    repos: RepoBackend,
    spec: TaskSpec,
    *,
    persona: Persona | None = None,
    requirement: str = "",
    attachments: Mapping[str, str] | None = None,
) -> PublishedRepo:
    """Create the task's repo and commit its hand-off files in ONE commit. For GitHub repos the
    result carries the Colab launch URL. ``requirement``: how the notebook installs agentfirm
    instead of the wheel of this agentfirm committed with the repo. ``attachments``: the
    request's documents by name (already redacted). Raises what ``repos.create`` raises
    (``BadInput`` for a taken name or a bad token) before anything is written."""
    wheel = None if requirement else await asyncio.to_thread(running_wheel)
    wheel_path, wheel_sha256 = (wheel.repo_path, wheel.sha256) if wheel else ("", "")
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
            wheel=wheel_path,
            wheel_sha256=wheel_sha256,
        )
        launch_url = await repos.launch_url(location, NOTEBOOK_PATH)
    else:
        params = NotebookParams(
            task_id=spec.task_id,
            requirement=requirement,
            wheel=wheel_path,
            wheel_sha256=wheel_sha256,
        )
    files = task_repo_files(
        spec,
        params=params,
        location=location,
        persona=persona,
        launch_url=launch_url,
        wheel=wheel,
        attachments=attachments,
    )
    await repos.write_files(location, files)
    sha = await repos.commit(location, f"agentfirm: hand-off of task {spec.task_id}")
    return PublishedRepo(
        location=location, commit=sha, notebook_path=NOTEBOOK_PATH, launch_url=launch_url
    )


async def repo_attachments(repos: RepoBackend, location: str) -> list[Document]:
    """The request's documents as the task repo carries them (none: an empty list)."""
    manifest = await repos.read_file(location, ATTACHMENTS_MANIFEST)
    if manifest is None:
        return []
    names = json.loads(manifest).get("documents") or []
    documents = []
    for name in names:
        data = await repos.read_file(location, f"{ATTACHMENTS_DIR}/{name}")
        if data is not None:
            documents.append(Document(str(name), data.decode("utf-8")))
    return documents
