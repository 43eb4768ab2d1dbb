"""A 2000-module offline task, run as ``agentfirm run --yes --persona`` runs it: the app opened on a
temp home (SQLite store, embedded bus, local repos), its Master from ``App.master``, a persona of
2000 modules in the config dir (offline, the plan is the persona's template as is; a model would
be refused a plan past ``planning.MAX_MODULES``). The task goes from intake to ``completed``:
every module runs, the stitch goes hierarchical under the bound production takes from the
reasoning model's metadata (no override), and the quality judgement stays within it too. One
ledger row per request the provider received; the committed deliverable holds every module's
section.

About 10 s of CPU: here, not in tests/unit, for its 20-35 s of wall time on a loaded 2-core
machine."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentfirm.app import App
from agentfirm.build_master.stitching import DEFAULT_CONTEXT_TOKENS, stitch_bound
from agentfirm.domain.calls import QUALITY_ID, STITCH_ID
from agentfirm.domain.models import TaskStatus
from agentfirm.master.decisions import AutoDecider
from agentfirm.personas.library import PersonaLibrary
from agentfirm.router.base import ProviderRequest, ProviderResponse
from agentfirm.router.chains import resolve_chains
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.router.tokens import estimate_messages
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from tests.unit.test_stitching import enum_values

MODULES = 2000
PERSONA = "cargo_bike_census"
REQUEST = "Size the market for electric cargo bikes in Europe, city by city"


@dataclass(frozen=True)
class Sent:
    request: ProviderRequest
    input_tokens: int


class Recording:
    """The offline provider, remembering every request it receives (its input estimated as the
    router estimates it)."""

    name = "offline"
    simulated = True

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._offline = OfflineProvider()

    async def complete(self, request: ProviderRequest) -> ProviderResponse:
        self.sent.append(Sent(request, estimate_messages(request.messages)))
        return await self._offline.complete(request)


def persona_of(size: int, rng: random.Random) -> dict[str, Any]:
    """A persona whose modules are ``bench/scale.py``'s random plan (each depends on up to three
    of the ten before it), judged by the market research persona's checklist."""
    modules: list[dict[str, Any]] = []
    for n in range(size):
        recent = [m["id"] for m in modules[-10:]]
        deps = rng.sample(recent, k=min(len(recent), rng.randint(0, 3)))
        modules.append(
            {
                "id": f"m{n}",
                "title": f"Part {n}",
                "brief": f"Write module m{n} of the market study.",
                "tier": "execution",
                "depends_on": sorted(deps),
                "output_type": "research_notes",
            }
        )
    return {
        "name": "Cargo bike census",
        "description": "Sizes a market city by city, one module a city.",
        "classification_keywords": ["cargo bike census"],
        "modules": modules,
        "quality_checklist": list(PersonaLibrary.load().get("market_research").quality_checklist),
    }


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[tuple[App, Recording]]:
    env = {"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_OFFLINE": "1"}
    settings = load_settings(env, cwd=tmp_path)
    personas = settings.paths.config_dir / "personas"
    personas.mkdir(parents=True)
    text = yaml.safe_dump(persona_of(MODULES, random.Random(7)), sort_keys=False)
    (personas / f"{PERSONA}.yaml").write_text(text, encoding="utf-8")
    redactor = Redactor()
    opened = await App.open(
        settings, redactor=redactor, secrets=SecretStore(redactor, env={}), env=env
    )
    provider = Recording()
    # ``build_router``'s offline router, with the provider recorded.
    router = Router(
        chains=resolve_chains(settings, {"offline"}),
        providers={"offline": provider},
        pricer=Pricer(settings.prices),
        store=opened.store,
        redact=redactor.redact,
        timeout_s=settings.provider_timeout_s,
        notify=opened.bus.publish,
        cancel_grace_s=settings.cancel_grace_s,
        in_flight=opened.in_flight,
    )
    async with dataclasses.replace(opened, _router=router) as app:
        yield app, provider


async def test_a_2000_module_task_completes_with_every_stitch_call_under_the_bound(
    app: tuple[App, Recording],
) -> None:
    context, provider = app
    master = context.master(AutoDecider())
    router = context.router
    bound = stitch_bound(router.context_window("reasoning"))
    pricer = Pricer(context.settings.prices)
    windows = {
        entry.model: pricer.context_window(entry) or DEFAULT_CONTEXT_TOKENS
        for chain in resolve_chains(context.settings, {"offline"}).values()
        for entry in chain
    }

    result = await master.run(REQUEST, persona=PERSONA)

    assert result.status == "completed", result.error
    task = await context.store.get_task(result.task_id)
    assert task.status is TaskStatus.COMPLETED
    assert task.spec is not None
    plan = task.spec.plan.modules
    assert len(plan) == MODULES
    assert master.build.stitch_tokens == bound  # production's bound, no override
    # One ledger row per request the provider received, and nothing else.
    ledger = await context.store.list_ledger(task.id)
    assert sorted(e.call_id for e in ledger) == sorted(s.request.call_id for s in provider.sent)
    assert len({e.call_id for e in ledger}) == len(ledger)
    called = {e.call_id: e.module_id for e in ledger}
    stitches = [s for s in provider.sent if called[s.request.call_id] == STITCH_ID]
    judged = [s for s in provider.sent if called[s.request.call_id] == QUALITY_ID]
    calls = Counter(called[s.request.call_id] for s in provider.sent)
    assert all(calls[m.id] == 1 for m in plan)
    # Hierarchical: several calls stitched parts that one call could not have held.
    sizes = [s.input_tokens for s in stitches]
    assert max(sizes) <= bound
    assert len(stitches) > 2
    assert sum(sizes) > bound
    # The judgement sees the deliverable within the same bound (cut: its appendix is too long),
    # with a schema OpenAI's strict mode takes (at most 1,000 enum values).
    assert len(judged) == 1
    assert judged[0].input_tokens <= bound
    assert "Cut for length" in judged[0].request.messages[-1].content
    assert enum_values(judged[0].request.output_schema) <= 1000
    # The plan's estimate priced the stitch and the judgement as they ran: their worst case
    # covers what they cost (the suggested budget is built on it).
    estimated = {m.module_id: m for m in master.estimate(task.spec).modules}
    for extra in (STITCH_ID, QUALITY_ID):
        spent = sum(e.cost_nano for e in ledger if e.module_id == extra)
        assert 0 < spent <= estimated[extra].worst_nano
    # No request past its model's window.
    for sent in provider.sent:
        assert sent.input_tokens <= windows[sent.request.model]
    assert task.deliverable_path is not None
    markdown = await asyncio.to_thread(Path(task.deliverable_path).read_text, encoding="utf-8")
    headings = re.findall(r"^### (.+) \(`(m\d+)`\)$", markdown, flags=re.MULTILINE)
    assert headings == [(m.title, m.id) for m in plan]  # each once, in plan order
