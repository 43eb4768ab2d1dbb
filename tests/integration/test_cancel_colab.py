"""A cancel reaches a build on Colab (issue 17 done-when 2, issue 22 done-when 4): the daemon's
way of stopping a driver (``stop_driver``) sends ``abort`` on the control stream; the Colab run —
played here by ``remote.run_spec`` on the task repo of the loopback GitHub, as the notebook runs
it — stops its build, books its calls in flight as answered and reports ``aborted``; the
Master's Colab runner hears it and ends the task ``aborted`` itself, without being cancelled."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from agentfirm.daemon.driver_stop import stop_driver
from keyring.backends.null import Keyring as NullKeyring

from agentfirm.app import App
from agentfirm.master.agent import RunResult
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.transitions import cancel
from agentfirm.runs import remote
from agentfirm.runs.colab import ColabRunner
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from tests.fakes.github import FakeGitHub
from tests.integration.test_notebook_runner import PERSONA, REQUEST, github_env
from tests.integration.test_worker import GUARD_S, a_module_running

pytestmark = pytest.mark.integration


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub({"gh-test-token": "alice"}) as fake:
        yield fake


@dataclass
class ColabTask:
    """A task driven by a Master whose runner is Colab; ``colab()`` runs the notebook as a
    person with the link would, once it is launched."""

    app: App
    env: dict[str, str]
    driving: asyncio.Task[RunResult]
    link: asyncio.Future[str]
    dest: Path

    async def colab(self) -> remote.RemoteResult:
        await self.link
        (task,) = await self.app.store.list_tasks()
        assert task.repo_path is not None
        spec_path = await remote.locate_spec(task.repo_path, dest=self.dest, env=self.env)
        return await remote.run_spec(
            spec_path, repo=task.repo_path, env=self.env, configure_logs=False
        )


@contextlib.asynccontextmanager
async def _colab_task(tmp_path: Path, github: FakeGitHub) -> AsyncIterator[ColabTask]:
    # Slow enough to be caught mid-build.
    env = github_env(tmp_path / "home", github, AGENTFIRM_OFFLINE_LATENCY_MS="100-200")
    settings = load_settings(env)
    redactor = Redactor()
    secrets = SecretStore(redactor, env=env, backend=NullKeyring())
    app = await App.open(settings, redactor=redactor, secrets=secrets)
    async with app, asyncio.timeout(GUARD_S):
        link: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        master = app.master(AutoDecider())
        master.runner = ColabRunner(
            store=app.store, bus=app.bus, repos=app.repos, on_launch=link.set_result
        )
        driving = asyncio.create_task(master.run(REQUEST, persona=PERSONA))
        try:
            yield ColabTask(app, env, driving, link, tmp_path / "colab")
        finally:
            driving.cancel()
            await asyncio.wait([driving], timeout=1)  # a stuck driver: see the last test


async def test_a_cancel_reaches_a_colab_build_which_answers_it_aborted(
    tmp_path: Path, github: FakeGitHub
) -> None:
    async with _colab_task(tmp_path, github) as task:
        app, driving = task.app, task.driving
        colab = asyncio.create_task(task.colab())
        task_id = await a_module_running(app)
        status = (await app.store.get_task(task_id)).status

        await stop_driver(
            app.bus, task_id, status, driving, actor="test", reason="cancelled by the user"
        )
        booked_then = {e.call_id for e in await app.store.list_ledger(task_id)}
        in_colab = await colab

        assert not driving.cancelled()  # the runner answered: its driver was not cut short
        assert driving.result().status == "aborted"
        assert in_colab.outcome == "aborted"
        assert (await app.store.get_task(task_id)).status == "aborted"
        rows = await app.store.list_ledger(task_id)
        late = [r for r in rows if r.call_id not in booked_then]
        assert late == [], late  # no call was booked after the cancel returned
        # Those in flight were answered within the grace: booked as answered, none estimated.
        assert rows
        assert not any(r.upper_bound for r in rows)
        assert (await app.store.get_budget(task_id)).reserved_nano == 0


async def test_a_colab_link_opened_after_the_cancel_builds_nothing(
    tmp_path: Path, github: FakeGitHub
) -> None:
    """Nobody ran the notebook when the task was cancelled, so nothing answered the abort and
    the task was ended without it. A build started later watches only aborts sent from then
    on: it ran every module of the aborted task, paying for each."""
    async with _colab_task(tmp_path, github) as task:
        app, driving = task.app, task.driving
        await task.link
        (row,) = await app.store.list_tasks()
        driving.cancel()  # its driver stops first, as the daemon's does
        with contextlib.suppress(asyncio.CancelledError):
            await driving
        await cancel(app.store, app.bus, row.id, actor="test", reason="cancelled by the user")
        before = await app.store.list_ledger(row.id)

        in_colab = await task.colab()

        assert in_colab.outcome == "aborted"
        assert await app.store.list_ledger(row.id) == before
        assert in_colab.modules_done == ()
        assert (await app.store.get_task(row.id)).status == "aborted"


async def test_a_cancel_nobody_answers_returns_though_the_driver_does_not_end(
    tmp_path: Path, github: FakeGitHub
) -> None:
    """Nobody runs the notebook, so the abort goes unanswered and the driver is cancelled. A
    Colab driver cancelled just after an abort was published did not end (its event pump kept
    the cancellation from ending it), and ``tasks cancel`` waited for it for ever."""
    async with _colab_task(tmp_path, github) as task:
        await task.link
        (row,) = await task.app.store.list_tasks()
        status = (await task.app.store.get_task(row.id)).status

        await stop_driver(
            task.app.bus, row.id, status, task.driving, actor="test", reason="x", answer_s=0.1
        )
