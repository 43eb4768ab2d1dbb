"""The ``notebook`` runner: the task repo's notebook executed headless here (nbclient) in a kernel
of this very Python, so the remote path is exercised locally on every run."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain.models import TaskSpec
from agentfirm.errors import AgentfirmError, BadInput
from agentfirm.handoff.github import GitHubRepos
from agentfirm.handoff.notebook import SKIP_INSTALL_ENV, read_notebook
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import NOTEBOOK_PATH
from agentfirm.runs.base import Redact, same, settings_env
from agentfirm.runs.kernel import KernelRun
from agentfirm.runs.launched import LaunchedRunner
from agentfirm.settings import Settings
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)


class NotebookRunner(LaunchedRunner):
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
        redact: Redact = same,
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


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _save(path: Path, notebook: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(notebook, indent=1, sort_keys=True) + "\n", encoding="utf-8")
