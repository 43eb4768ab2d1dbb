"""The task notebook: a self-contained Jupyter notebook that runs a task's Build Master.

The same notebook runs in Colab (opened from the task repo on GitHub) and headless here (the
notebook runner). Its cells: a header, the parameters, installing agentfirm (skipped when the
kernel already runs it), configuration from Colab's secret store or the environment, the build
through ``agentfirm.build.remote`` and a results summary. It holds names of secrets, never a value:
keys are read into the kernel's environment when it runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import nbformat

from agentfirm import __version__
from agentfirm.build.scheduler import waves
from agentfirm.domain import TaskSpec
from agentfirm.errors import BadInput
from agentfirm.money import nano_to_float
from agentfirm.secrets import KNOWN

SKIP_INSTALL_ENV = "AGENTFIRM_SKIP_INSTALL"
"""Set to ``1`` by the local notebook runner: its kernel already runs this agentfirm."""

# Read from Colab's secret store into the kernel's environment: provider keys, the GitHub token,
# and the URLs of the shared store and bus (they may carry passwords).
SECRET_NAMES: tuple[str, ...] = (
    *(name for name in KNOWN if not name.startswith("SLACK_")),
    "AGENTFIRM_DATABASE_URL",
    "AGENTFIRM_REDIS_URL",
)


def default_requirement() -> str:
    """What the notebook installs by default: this very version of agentfirm."""
    return f"agentfirm=={__version__}"


@dataclass(frozen=True)
class NotebookParams:
    """What the notebook needs beyond the spec; none of it is secret.

    ``repo``: the task repo's URL when it is on GitHub, ``""`` when the notebook runs inside the
    task repo's own directory. ``requirement``: a pip requirement for agentfirm (a pinned version,
    a wheel path or URL, ``git+https://…``)."""

    task_id: str
    repo: str = ""
    repo_backend: Literal["local", "github"] = "local"
    github_owner: str | None = None
    github_api_url: str | None = None
    requirement: str = ""

    def effective_requirement(self) -> str:
        return self.requirement or default_requirement()


def build_notebook(spec: TaskSpec, params: NotebookParams) -> dict[str, Any]:
    """The task notebook for ``spec`` (nbformat 4 JSON), validated against the nbformat schema.
    Deterministic: the same spec and parameters give the same notebook, cell ids included."""
    if params.task_id != spec.task_id:
        raise BadInput(f"notebook parameters are for task {params.task_id}, not {spec.task_id}")
    notebook: dict[str, Any] = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
            "colab": {"name": f"agentfirm task {spec.task_id}", "provenance": []},
            "agentfirm": {"task_id": spec.task_id, "version": __version__},
        },
        "cells": [
            _markdown("header", _header(spec)),
            _code("parameters", _parameters(params), tags=["parameters"]),
            _code("install", _INSTALL),
            _code("config", _config()),
            _code("run", _RUN),
            _code("results", _RESULTS),
        ],
    }
    nbformat.validate(notebook)
    return notebook


def notebook_text(notebook: Mapping[str, Any]) -> str:
    """The notebook as ``.ipynb`` text, laid out as Jupyter writes it."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def read_notebook(text: str | bytes) -> dict[str, Any]:
    """Parse and validate ``.ipynb`` text (nbformat 4). Raises ``BadInput`` when it is not a
    valid notebook."""
    try:
        notebook = json.loads(text)
        if not isinstance(notebook, dict) or notebook.get("nbformat") != 4:
            raise ValueError("not an nbformat 4 notebook")
        nbformat.validate(notebook)
    except Exception as err:  # JSON, shape and schema errors alike
        raise BadInput(
            f"the task notebook is not a valid notebook: {type(err).__name__}",
            hint="hand the task off again to regenerate it",
        ) from err
    return notebook


def _lines(source: str) -> list[str]:
    # Sources as lists of lines, as Jupyter saves them: diffs of the task repo stay readable.
    return source.splitlines(keepends=True)


def _markdown(cell_id: str, source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": _lines(source)}


def _code(cell_id: str, source: str, *, tags: list[str] | None = None) -> dict[str, Any]:
    return {
        "cell_type": "code",
        "id": cell_id,
        "metadata": {"tags": tags} if tags else {},
        "source": _lines(source),
        "outputs": [],
        "execution_count": None,
    }


# ---------------------------------------------------------------------------- cells
def _header(spec: TaskSpec) -> str:
    modules = spec.plan.modules
    levels = spec.plan.waves or waves(modules)
    wave_of = {m: n for n, level in enumerate(levels, start=1) for m in level}
    rows = "\n".join(
        f"| `{m.id}` | {m.title or m.id} | {m.tier} | {wave_of.get(m.id, '?')} | "
        f"{', '.join(m.depends_on) or '—'} |"
        for m in modules
    )
    wave_lines = "\n".join(
        f"{n}. {', '.join(f'`{m}`' for m in level)}" for n, level in enumerate(levels, start=1)
    )
    request = "\n".join(f"> {line}" for line in spec.request.splitlines() or [""])
    secrets = ", ".join(f"`{name}`" for name in SECRET_NAMES)
    return f"""# agentfirm task `{spec.task_id}` — {spec.persona_name or spec.persona}

{request}

**Budget:** ${nano_to_float(spec.budget_nano):.2f} (hard ceiling; a call that would pass it waits \
for the Master Agent's decision)

| module | title | tier | wave | depends on |
|---|---|---|---|---|
{rows}

**Waves** (a module starts as soon as its own dependencies are done):

{wave_lines}

Run all cells. In Colab, add the keys this task needs under *Secrets* (the key icon): {secrets}.
They are read when the notebook runs and never written into it. Progress, costs and results go to
the Master Agent's bus; module outputs go to `outputs/` in the task repo.
"""


def _literal(value: Any) -> str:
    # JSON text is a valid Python literal for strings and None → null is not: map it.
    return "None" if value is None else json.dumps(value)


def _parameters(params: NotebookParams) -> str:
    return "\n".join(
        [
            "# Parameters (no secrets here: keys come from the secret store or the environment).",
            f"TASK_ID = {_literal(params.task_id)}",
            f"REPO = {_literal(params.repo)}  # the task repo; '' = this notebook's own directory",
            f"REPO_BACKEND = {_literal(params.repo_backend)}",
            f"GITHUB_OWNER = {_literal(params.github_owner)}",
            f"GITHUB_API_URL = {_literal(params.github_api_url)}",
            f"AGENTFIRM_REQUIREMENT = {_literal(params.effective_requirement())}",
        ]
    )


_INSTALL = f"""\
# Install agentfirm, unless this kernel already runs it (the local notebook runner says so).
import os
import subprocess
import sys

if os.environ.get({_literal(SKIP_INSTALL_ENV)}) != "1":
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", AGENTFIRM_REQUIREMENT], check=True
    )

import agentfirm

print("agentfirm", agentfirm.__version__)"""


def _config() -> str:
    return f"""\
# Keys: Colab's secret store when there is one, else the environment. Values stay in this
# process's environment; only the names of the keys found are printed.
import os

SECRET_NAMES = {json.dumps(list(SECRET_NAMES))}

try:
    from google.colab import userdata
except ImportError:
    userdata = None

for name in SECRET_NAMES:
    if userdata is not None and not os.environ.get(name):
        try:
            value = userdata.get(name)
        except Exception:  # not defined, or this notebook was not given access to it
            value = None
        if value:
            os.environ[name] = value

for name, value in {{
    "AGENTFIRM_REPO_BACKEND": REPO_BACKEND,
    "AGENTFIRM_GITHUB_OWNER": GITHUB_OWNER,
    "AGENTFIRM_GITHUB_API_URL": GITHUB_API_URL,
}}.items():
    if value:
        os.environ.setdefault(name, value)

print("keys found:", ", ".join(n for n in SECRET_NAMES if os.environ.get(n)) or "none")"""


_RUN = """\
# Run the Build Master on the spec: every module, then the stitched draft. Progress, costs and
# results are published on the bus; the review decision stays with the Master Agent.
from agentfirm.build import remote

SPEC = await remote.locate_spec(REPO)
RESULT = await remote.run_spec(SPEC, repo=REPO or None)"""


_RESULTS = """\
print(RESULT.summary())"""
