"""Choosing where a build runs: the runner called by a name (``settings.runner``, ``--runner``, a
task's policy) and what stops it from running here."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.base import Bus
from agentfirm.handoff.repos import RepoBackend
from agentfirm.runs.base import OnLaunch, Redact, Runner, RunnerName, same
from agentfirm.runs.inproc import InprocRunner
from agentfirm.settings import Settings
from agentfirm.store.base import Store


def runner_for(
    name: RunnerName,
    *,
    build: BuildMaster,
    store: Store,
    bus: Bus,
    repos: RepoBackend,
    settings: Settings,
    env: Mapping[str, str],
    redact: Redact = same,
    on_launch: OnLaunch | None = None,
    has_secret: Callable[[str], bool] = lambda name: False,
) -> Runner:
    """The runner called ``name`` (``settings.runner`` or ``--runner``). ``env`` is the
    environment the settings were loaded from (the notebook's kernel gets it); ``has_secret``
    says which secrets this machine holds (Colab needs the same ones)."""
    if name == "notebook":
        from agentfirm.runs.notebook import NotebookRunner

        return NotebookRunner(
            store=store, bus=bus, repos=repos, settings=settings, env=env, redact=redact
        )
    if name == "colab":
        from agentfirm.runs.colab import ColabRunner, colab_secrets

        return ColabRunner(
            store=store,
            bus=bus,
            repos=repos,
            on_launch=on_launch,
            redact=redact,
            secrets=colab_secrets(settings, has_secret),
        )
    if name == "worker":
        from agentfirm.runs.worker_queue import WorkerRunner

        return WorkerRunner(store=store, bus=bus, repos=repos, settings=settings, redact=redact)
    return InprocRunner(build)


def runner_problems(settings: Settings, name: RunnerName | None = None) -> list[str]:
    """Configuration problems of the runner ``name`` (default ``settings.runner``), for
    ``config check`` and before a run: Colab can only reach GitHub repos and shared backends;
    workers share the task through the Postgres store and the Redis bus."""
    runner = name or settings.runner
    if runner not in ("colab", "worker"):
        return []
    problems = []
    if runner == "colab" and settings.repo_backend != "github":
        problems.append(
            "runner: colab opens the notebook from GitHub — set AGENTFIRM_REPO_BACKEND=github "
            "(and GITHUB_TOKEN), or use the notebook runner"
        )
    if not shared_backends(settings):
        problems.append(
            f"runner: {runner} cannot reach this machine's embedded store and bus — set "
            "AGENTFIRM_DATABASE_URL=postgresql://… and AGENTFIRM_REDIS_URL=redis://…, "
            "or use the " + ("notebook" if runner == "colab" else "inproc") + " runner"
        )
    return problems


def shared_backends(settings: Settings) -> bool:
    """True when the store is Postgres and the bus Redis: what processes on other machines
    (Colab, workers) need to share a task."""
    database = settings.database_url or ""
    return database.startswith(("postgresql://", "postgres://")) and bool(settings.redis_url)
