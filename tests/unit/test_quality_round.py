"""Quality: every checklist item judged with evidence; failing items get one automatic revision
round (when the budget allows) and the report lands in the task repo as ``quality.json``."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.calls import QUALITY_ID
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.estimate import estimate_plan
from agentfirm.master.task_lock import TaskLocks
from agentfirm.money import nano_to_float
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router import build_router
from agentfirm.router.base import CallResult, Message
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.flaky_router import starts_a_run

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
PERSONA = PersonaLibrary.load().get("patent_research")
CHECKLIST = list(PERSONA.quality_checklist)
WEAK = CHECKLIST[1]  # "Novelty analysis addresses at least 3 closest prior art references"
EVIDENCE = "the novelty analysis discusses only two references"
REVISED = {"novelty_analysis", "claims_drafting", "filing_recommendation"}


def verdicts(failing: dict[str, list[str]]) -> dict[str, Any]:
    """Every checklist item passed, but those in ``failing`` (item → modules named)."""
    return {
        "items": [
            {
                "item": item,
                "passed": item not in failing,
                "evidence": EVIDENCE if item in failing else "section 2",
                "modules": failing.get(item, []),
            }
            for item in CHECKLIST
        ]
    }


class JudgedBy:
    """The real offline router (ledger, budget, module outputs), with the quality judge's
    verdicts scripted in turn, as a real model's."""

    def __init__(self, inner: Any, *judgements: dict[str, Any]) -> None:
        self.inner = inner
        self.judgements = list(judgements)
        self.calls: Counter[str] = Counter()
        self.prompts: dict[str, list[str]] = {}

    async def call(self, *, messages: Sequence[Message], **kwargs: Any) -> CallResult:
        module_id = str(kwargs.get("module_id"))
        if starts_a_run(messages):  # an agent loop's later turns are the same run
            self.calls[module_id] += 1
            self.prompts.setdefault(module_id, []).append(messages[-1].content)
        result: CallResult = await self.inner.call(messages=messages, **kwargs)
        if module_id == QUALITY_ID:  # as a real judge: its verdicts are not simulated
            return dataclasses.replace(result, data=self.judgements.pop(0), simulated=False)
        return result

    def entry_for(self, tier: Any) -> Any:
        return self.inner.entry_for(tier)

    def estimate_nano(self, tier: Any, input_tokens: int, output_tokens: int) -> int:
        value: int = self.inner.estimate_nano(tier, input_tokens, output_tokens)
        return value


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteLogBus, Path]]:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    yield store, bus, tmp_path
    await bus.close()
    await store.close()


def _master(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path], *judgements: dict[str, Any]
) -> tuple[MasterAgent, JudgedBy]:
    store, bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    router = JudgedBy(build_router(settings, store, available={"offline"}), *judgements)
    master = MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router),  # type: ignore[arg-type]
        personas=PersonaLibrary.load(),
        pricing=router,  # type: ignore[arg-type]
        repos=LocalGitRepos(root / "repos"),
        decider=AutoDecider(),
        locks=TaskLocks(root / "locks"),
    )
    return master, router


async def _quality_json(repo: str | None) -> dict[str, Any]:
    assert repo is not None
    text = await asyncio.to_thread((Path(repo) / "quality.json").read_text, encoding="utf-8")
    report: dict[str, Any] = json.loads(text)
    return report


async def test_a_failing_item_reruns_the_modules_named_and_downstream_then_is_judged_again(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    master, router = _master(parts, verdicts({WEAK: ["novelty_analysis"]}), verdicts({}))

    result = await master.run(REQUEST, persona="patent_research", budget_usd="5")

    assert result.status == "completed"
    for module in PERSONA.modules:
        assert router.calls[module.id] == (2 if module.id in REVISED else 1), module.id
    assert (router.calls["_stitch"], router.calls[QUALITY_ID]) == (2, 2)
    notes = router.prompts["novelty_analysis"][1]
    assert "Quality review" in notes
    assert WEAK in notes
    assert EVIDENCE in notes
    report = await _quality_json(result.repo)
    assert (report["passed"], report["failed"]) == (len(CHECKLIST), 0)
    assert report["revision"]["done"] is True
    assert report["revision"]["modules"] == sorted(REVISED)
    assert report["revision"]["failed_items"] == [WEAK]
    assert [i["item"] for i in report["items"]] == CHECKLIST
    assert all(i["evidence"] for i in report["items"])


async def test_items_still_failing_after_the_round_are_reported_and_no_second_round_runs(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    failing = verdicts({WEAK: ["filing_recommendation"]})
    master, router = _master(parts, failing, failing)

    result = await master.run(REQUEST, persona="patent_research", budget_usd="5")

    assert result.status == "completed"
    assert router.calls[QUALITY_ID] == 2
    assert router.calls["filing_recommendation"] == 2
    report = await _quality_json(result.repo)
    assert report["failed"] == 1
    assert report["items"][1] == {
        "item": WEAK,
        "passed": False,
        "evidence": EVIDENCE,
        "modules": ["filing_recommendation"],
    }


async def test_no_round_runs_when_the_budget_left_cannot_cover_it(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    everything = [m.id for m in PERSONA.modules]
    master, router = _master(parts, verdicts({WEAK: everything}))
    worst = estimate_plan(PERSONA.to_plan(), router, checklist_items=len(CHECKLIST)).worst_nano

    # A ceiling at the plan's worst case runs the first pass, but a round re-running every
    # module would need the whole worst case again.
    result = await master.run(REQUEST, persona="patent_research", budget_usd=nano_to_float(worst))

    assert result.status == "completed"
    assert router.calls[QUALITY_ID] == 1
    assert all(router.calls[m] == 1 for m in everything)
    report = await _quality_json(result.repo)
    assert report["failed"] == 1
    assert report["revision"]["done"] is False
    assert report["revision"]["needed_usd"] > report["revision"]["available_usd"]
    assert not any(e.type == "quality.revision" for e in await master.bus.replay(result.task_id))


async def test_simulated_verdicts_never_start_a_round(
    parts: tuple[SQLiteStore, SQLiteLogBus, Path],
) -> None:
    store, bus, root = parts
    settings = load_settings({"AGENTFIRM_HOME": str(root), "AGENTFIRM_OFFLINE": "1"})
    router = build_router(settings, store, available={"offline"})
    master = MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(store=store, bus=bus, router=router),
        personas=PersonaLibrary.load(),
        pricing=router,
        repos=LocalGitRepos(root / "repos"),
        decider=AutoDecider(),
        locks=TaskLocks(root / "locks"),
    )

    result = await master.run(REQUEST, persona="patent_research", budget_usd="5")

    report = await _quality_json(result.repo)
    assert report["simulated"] is True
    assert report["failed"] > 0  # the offline judge fails some items of this request
    assert report["revision"]["done"] is False
    ledger = await store.list_ledger(result.task_id)
    assert Counter(r.module_id for r in ledger)["_stitch"] == 1
