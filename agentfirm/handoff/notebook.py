"""The task notebook: a self-contained Jupyter notebook that runs a task's Build Master.

The same notebook runs in Colab (opened from the task repo on GitHub), headless here (the
notebook runner) and in any clone of the task repo. Its cells: a header, the parameters,
configuration from Colab's secret store or the environment, installing agentfirm (skipped when the
kernel already runs it), the build through ``agentfirm.runs.remote`` and a results summary.
agentfirm is installed from the wheel committed with the task repo (its hash checked first), so no
package index needs to hold agentfirm; a setting may name another requirement instead. It holds
names of secrets, never a value: keys are read into the kernel's environment when it runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import nbformat

from agentfirm import __version__
from agentfirm.domain.graph import waves
from agentfirm.domain.models import TaskSpec
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


@dataclass(frozen=True)
class NotebookParams:
    """What the notebook needs beyond the spec; none of it is secret.

    ``repo``: the task repo's URL when it is on GitHub, ``""`` when the notebook runs inside the
    task repo's own directory. ``wheel``/``wheel_sha256``: the agentfirm wheel committed with the
    repo (its path there) and its hash. ``requirement``: a pip requirement that replaces the wheel
    (a pinned index version, ``git+https://…``) for teams that publish agentfirm themselves."""

    task_id: str
    repo: str = ""
    repo_backend: Literal["local", "github"] = "local"
    github_owner: str | None = None
    github_api_url: str | None = None
    requirement: str = ""
    wheel: str = ""
    wheel_sha256: str = ""

    def effective_requirement(self) -> str:
        """What pip installs, as ``requirements.txt`` says it."""
        if self.requirement:
            return self.requirement
        if not self.wheel:
            raise BadInput(
                f"the notebook of task {self.task_id} has no way to install agentfirm",
                hint="commit the running agentfirm's wheel, or set AGENTFIRM_NOTEBOOK_REQUIREMENT",
            )
        return f"./{self.wheel}"


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
            _code("config", _config()),
            _code("install", _INSTALL),
            _code("run", _RUN),
            _code("results", _RESULTS),
        ],
    }
    _check_schema(notebook)
    return notebook


def _check_schema(notebook: Mapping[str, Any]) -> None:
    """The notebook against the nbformat schema, through nbformat's jsonschema validator: its
    default (fastjsonschema) first compiles the schema to Python, most of a hand-off's time in a
    process that checks one notebook (a run, a resume, a daemon start). Same schema; raises
    ``jsonschema.ValidationError`` (what ``nbformat.ValidationError`` is)."""
    from nbformat.validator import get_validator

    validator = get_validator(  # type: ignore[no-untyped-call]
        notebook["nbformat"], notebook["nbformat_minor"], name="jsonschema"
    )
    validator.validate(notebook)


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
            f"AGENTFIRM_WHEEL = {_literal(params.wheel)}  # in the task repo",
            f"AGENTFIRM_WHEEL_SHA256 = {_literal(params.wheel_sha256)}",
            f"AGENTFIRM_REQUIREMENT = {_literal(params.requirement)}  # '' = the wheel above",
        ]
    )


_INSTALL = f"""\
# Install agentfirm, unless this kernel already runs it (the local notebook runner says so): the
# wheel committed with the task repo (from this directory, or through the GitHub API when the
# notebook was opened from GitHub), checked against its hash; or the requirement set instead.
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.request


def _github_file(repo, path):
    owner, name = repo.rstrip("/").split("/")[-2:]
    api = (GITHUB_API_URL or "https://api.github.com").rstrip("/")
    headers = {{"Accept": "application/vnd.github+json"}}
    if os.environ.get("GITHUB_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["GITHUB_TOKEN"]

    def get(url):
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as reply:
            return json.load(reply)

    found = get(f"{{api}}/repos/{{owner}}/{{name}}/contents/{{path}}")
    # Above 1 MB the contents API leaves content empty; the blob API serves up to 100 MB.
    content = found.get("content")
    if not content:
        content = get(f"{{api}}/repos/{{owner}}/{{name}}/git/blobs/{{found['sha']}}")["content"]
    return base64.b64decode(content)


if os.environ.get({_literal(SKIP_INSTALL_ENV)}) != "1":
    target = AGENTFIRM_REQUIREMENT
    if not target:
        if REPO:
            data = _github_file(REPO, AGENTFIRM_WHEEL)
        else:
            with open(AGENTFIRM_WHEEL, "rb") as wheel_file:
                data = wheel_file.read()
        if hashlib.sha256(data).hexdigest() != AGENTFIRM_WHEEL_SHA256:
            raise RuntimeError(f"{{AGENTFIRM_WHEEL}} does not match its recorded hash")
        target = os.path.join(tempfile.mkdtemp(), os.path.basename(AGENTFIRM_WHEEL))
        with open(target, "wb") as wheel_file:
            wheel_file.write(data)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", target], check=True)

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
from agentfirm.runs import remote

SPEC = await remote.locate_spec(REPO)
RESULT = await remote.run_spec(SPEC, repo=REPO or None)"""


_RESULTS = """\
print(RESULT.summary())"""
