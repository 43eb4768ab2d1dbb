"""A module that still fails after its retries is put to the decider: retry, skip or abort."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from rich.console import Console

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.cli.prompts import TerminalDecider
from agentfirm.domain.models import ModuleStatus, Task, TaskStatus
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.approvals import StoreDecider
from agentfirm.master.decisions import AUTO_ACTOR, AutoDecider, Decider, FailureChoice
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.secrets import Redactor
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.flaky_router import Flaky

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
FAILING = "prior_art_search"
DOWNSTREAM = {"claim_chart", "novelty_analysis", "claims_drafting", "filing_recommendation"}
INDEPENDENT = {"feature_breakdown", "non_patent_literature_search"}


class Choosing(AutoDecider):
    """``--yes`` except for failed modules, answered from a script."""

    def __init__(self, *choices: FailureChoice) -> None:
        self.choices = list(choices)
        self.asked: list[tuple[str, str, int]] = []

    async def module_failed(
        self, task: Task, module_id: str, error: str, attempts: int
    ) -> FailureChoice:
        self.asked.append((module_id, error, attempts))
        return self.choices.pop(0)


class Person(Choosing):
    """Someone at the terminal (``agentfirm run --no-daemon``), answering from a script."""

    actor = "cli:ann"


async def _answering(decider: StoreDecider, failure: str, actor: str) -> None:
    """What the daemon's front ends do: every question of every task decided as it comes —
    failed modules' with ``failure`` by ``actor``, the others approved by a person."""
    store = decider.store
    while True:
        for task in await store.list_tasks():
            for row in await decider.pending(task.id):
                if row.kind == "failure":
                    await decider.decide(row.id, failure, actor=actor)
                else:
                    await decider.decide(row.id, "approved", actor="tui:bob")
        await asyncio.sleep(0.01)


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteLogBus, Path]]:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    yield store, bus, tmp_path
    await bus.close()
    await store.close()


async def _no_sleep(_seconds: float) -> None:
    return None


def _master(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], router: Flaky, decider: Decider
) -> MasterAgent:
    store, bus, root = parts
    return MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router, sleep=_no_sleep),  # type: ignore[arg-type]
        personas=PersonaLibrary.load(),
        pricing=router,  # type: ignore[arg-type]
        repos=LocalGitRepos(root / "repos"),
        decider=decider,
        locks=TaskLocks(root / "locks"),
        quality_revision=False,
    )


def _flaky(parts: tuple[SQLiteStore, SQLiteLogBus, Path], failures: int) -> Flaky:
    store, _bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    return Flaky(build_router(settings, store, available={"offline"}), failures, failing=FAILING)


async def _statuses(store: SQLiteStore, task_id: str) -> dict[str, ModuleStatus]:
    return {r.module_id: r.status for r in await store.list_module_runs(task_id)}


async def test_yes_aborts_a_failed_module_and_the_run_fails_after_the_independent_work(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store = parts[0]
    router = _flaky(parts, failures=10)
    result = await _master(parts, router, AutoDecider()).run(
        REQUEST, persona="patent_research", budget_usd="5"
    )

    assert result.status == "failed"
    assert result.error is not None
    assert FAILING in result.error
    assert (await store.get_task(result.task_id)).status is TaskStatus.FAILED
    statuses = await _statuses(store, result.task_id)
    assert statuses[FAILING] is ModuleStatus.FAILED
    assert {m for m in INDEPENDENT if statuses[m] is ModuleStatus.DONE} == INDEPENDENT
    assert not DOWNSTREAM & set(router.calls)  # never started
    (recorded,) = [a for a in await store.list_approvals(result.task_id) if a.kind == "failure"]
    assert (recorded.decision, recorded.actor) == ("aborted", "auto:--yes")
    last = (await store.list_transitions(result.task_id))[-1]
    assert (last.to_status, last.actor) == (TaskStatus.FAILED, AUTO_ACTOR)


async def test_a_person_aborting_at_a_failed_module_aborts_the_task_under_their_name(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store = parts[0]
    router = _flaky(parts, failures=10)
    result = await _master(parts, router, Person("abort")).run(
        REQUEST, persona="patent_research", budget_usd="5"
    )

    assert result.status == "aborted"  # exit 4, as an abort at the budget question
    assert result.error is not None
    assert FAILING in result.error
    last = (await store.list_transitions(result.task_id))[-1]
    assert (last.from_status, last.to_status) == (TaskStatus.EXECUTING, TaskStatus.ABORTED)
    assert last.actor == "cli:ann"
    assert f"module {FAILING} failed" in last.reason
    assert "503" in last.reason
    assert (await _statuses(store, result.task_id))[FAILING] is ModuleStatus.FAILED
    assert not DOWNSTREAM & set(router.calls)
    (recorded,) = [a for a in await store.list_approvals(result.task_id) if a.kind == "failure"]
    assert (recorded.decision, recorded.actor) == ("aborted", "cli:ann")


@pytest.mark.parametrize(
    ("actor", "status", "final"),
    [
        ("slack:U1", "aborted", TaskStatus.ABORTED),  # a person, through any front end
        (AUTO_ACTOR, "failed", TaskStatus.FAILED),  # `run --yes` following the daemon's task
    ],
)
async def test_an_abort_decided_through_the_daemons_questions_names_who_chose(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], actor: str, status: str, final: TaskStatus
) -> None:
    store, bus, _root = parts
    decider = StoreDecider(
        store, bus, redact=Redactor().redact, poll_interval=0.05, details_grace=0.5
    )
    answering = asyncio.create_task(_answering(decider, "aborted", actor))
    try:
        result = await _master(parts, _flaky(parts, failures=10), decider).run(
            REQUEST, persona="patent_research", budget_usd="5"
        )
    finally:
        answering.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answering

    assert result.status == status
    last = (await store.list_transitions(result.task_id))[-1]
    assert last.to_status is final
    assert last.actor == (actor if final is TaskStatus.ABORTED else "daemon")
    assert FAILING in last.reason


async def test_retry_runs_the_failed_module_again_and_the_task_completes(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store = parts[0]
    router = _flaky(parts, failures=2)  # both attempts of the first build
    decider = Choosing("retry")
    result = await _master(parts, router, decider).run(
        REQUEST, persona="patent_research", budget_usd="5"
    )

    assert result.status == "completed"
    assert [(m, attempts) for m, _error, attempts in decider.asked] == [(FAILING, 2)]
    assert "503" in decider.asked[0][1]
    runs = {r.module_id: r for r in await store.list_module_runs(result.task_id)}
    assert (runs[FAILING].status, runs[FAILING].attempts) == (ModuleStatus.DONE, 3)
    for module_id in INDEPENDENT | DOWNSTREAM:
        assert router.calls[module_id] == 1, module_id  # nothing ran twice
    (recorded,) = [a for a in await store.list_approvals(result.task_id) if a.kind == "failure"]
    assert recorded.decision == "retry"
    started = [
        e.payload["attempt"]
        for e in await parts[1].replay(result.task_id)
        if e.type == "module.started" and e.module_id == FAILING
    ]
    assert started == [1, 2, 3]  # the retry's attempt counts on, as its row does


async def test_skip_goes_on_without_the_module_and_the_deliverable_marks_it(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, _root = parts
    router = _flaky(parts, failures=10)
    result = await _master(parts, router, Choosing("skip")).run(
        REQUEST, persona="patent_research", budget_usd="5"
    )

    assert result.status == "completed"
    statuses = await _statuses(store, result.task_id)
    assert statuses[FAILING] is ModuleStatus.SKIPPED
    assert {statuses[m] for m in DOWNSTREAM} == {ModuleStatus.DONE}
    claim_chart_prompt = router.prompts["claim_chart"][0]
    assert "# Skipped upstream modules" in claim_chart_prompt
    assert f"(`{FAILING}`)" in claim_chart_prompt
    assert FAILING not in (await store.latest_artifacts(result.task_id))
    assert result.deliverable is not None
    deliverable = await asyncio.to_thread(Path(result.deliverable).read_text, encoding="utf-8")
    section = deliverable.split(f"(`{FAILING}`)", 1)[1].split("###", 1)[0]
    assert "**Skipped**" in section
    assert any(e.type == "module.skipped" for e in await bus.replay(result.task_id))


async def test_the_terminal_prompt_offers_retry_skip_and_abort(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = Console(file=io.StringIO(), width=100)
    answers = iter(["maybe", "s"])
    monkeypatch.setattr(out, "input", lambda prompt="": next(answers))
    decider = TerminalDecider(out)
    task = Task(id="t1", request="r")

    choice = await decider.module_failed(task, "claims", "provider said [503]", 2)

    assert choice == "skip"
    shown = out.file.getvalue()  # type: ignore[attr-defined]
    assert "claims failed" in shown
    assert "[503]" in shown
    assert "type r, s or a" in shown
