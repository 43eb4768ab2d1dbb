"""A whole task through real SDKs while the primary provider fails (issue 3, acceptance item 2).

The CLI runs in a subprocess against two loopback fakes: Anthropic (primary) fails about 30% of
the calls, its failures taking turns between a hang past the provider timeout (one second here,
``AGENTFIRM_PROVIDER_TIMEOUT_S``), 429 (retry-after 0), 503 and a connection reset; OpenAI
(fallback) always answers. Every answer satisfies the schema the request carries (the offline
provider's generator builds it), and the planner gets the template back, so the plan is the
persona's 12 modules.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import _SCRUB_PREFIXES, Result
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.compat_servers import cooperative_answer, last_user_text
from tests.fakes.http_fake import Recorded, Reply, running
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.provider_fake import ProviderFake

pytestmark = pytest.mark.e2e

CHAIN = '["anthropic:claude-sonnet-4-6", "openai:gpt-5-mini"]'
REQUEST = "Assess the rollout of a fleet telemetry platform for a regional bus operator"
SEED = 20261124
# A shuffled deck dealt to each new request in arrival order: 30% of the cards are faults.
# "once": the primary fails the first attempt and the router's retry succeeds there;
# "twice": it fails both attempts, so the call falls back to OpenAI.
DECK = ["ok"] * 14 + ["once"] * 3 + ["twice"] * 3
# What the failing attempts answer, in turn: every kind shows up whatever the arrival order.
FAULTS = ("hang", "429", "503", "reset")
TIMEOUT_S = 1
HANG_S = 60.0
"""Far past the timeout: the client gives up first (the fake stops waiting when it stops)."""

# 12 modules in 4 waves: 4 ∥ 4 ∥ 3 ∥ 1.
_WAVES: list[list[tuple[str, list[str]]]] = [
    [("scope", []), ("fleet", []), ("vendors", []), ("regulation", [])],
    [
        ("requirements", ["scope", "fleet"]),
        ("market", ["vendors"]),
        ("compliance", ["regulation"]),
        ("costs", ["fleet", "vendors"]),
    ],
    [
        ("risks", ["requirements", "compliance"]),
        ("options", ["market", "costs"]),
        ("timeline", ["requirements"]),
    ],
    [("recommendation", ["risks", "options", "timeline"])],
]
MODULES = [module for wave in _WAVES for module, _ in wave]


def _persona_yaml() -> str:
    modules = [
        {
            "id": module,
            "title": f"The {module} module",
            "tier": "reasoning" if module == "recommendation" else "execution",
            "depends_on": deps,
            "output_type": "recommendation" if module == "recommendation" else "research_notes",
            "brief": f"Research and write up the {module} of the telemetry rollout.",
        }
        for wave in _WAVES
        for module, deps in wave
    ]
    persona = {
        "name": "Twelve Modules",
        "description": "A 12-module engagement used to test provider faults end to end.",
        "classification_keywords": ["twelve modules"],
        "modules": modules,
        "quality_checklist": ["Every module's findings are reflected in the recommendation."],
    }
    return json.dumps(persona, indent=2)  # JSON is YAML


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    tools = body.get("tools") or []
    if tools:  # Anthropic: a forced tool call
        schema = tools[0].get("input_schema")
        return schema if isinstance(schema, dict) else None
    fmt = body.get("response_format") or {}  # OpenAI: response_format json_schema
    schema = (fmt.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def _answer_for(body: dict[str, Any]) -> dict[str, Any] | None:
    """What a cooperative model returns (see ``cooperative_answer``); None for a free-text
    request."""
    schema = _schema_of(body)
    if schema is None:
        return None
    return cooperative_answer(schema, last_user_text(body), int(body.get("max_tokens") or 4096))


def _succeed(fake: ProviderFake, request: Recorded) -> Reply:
    body = request.body if isinstance(request.body, dict) else {}
    data = _answer_for(body)
    if data is None:
        return fake.ok("A short answer.")(request)
    return fake.structured(data)(request)


class FlakyPrimary:
    """The primary's responder: each distinct request (by body) is dealt a card from the seeded
    deck on first sight; the failing attempts' kinds take turns through ``FAULTS``."""

    def __init__(self, fake: AnthropicFake) -> None:
        self._fake = fake
        self._lock = threading.Lock()
        self._rng = random.Random(SEED)
        self._deck: list[str] = []
        self._seen: Counter[str] = Counter()
        self._cards: dict[str, str] = {}
        self._failures = 0
        self.faults: Counter[str] = Counter()

    def _deal(self) -> str:
        if not self._deck:
            self._deck = list(DECK)
            self._rng.shuffle(self._deck)
        return self._deck.pop()

    def __call__(self, request: Recorded) -> Reply:
        key = hashlib.sha256(request.raw).hexdigest()
        with self._lock:
            if key not in self._cards:
                self._cards[key] = self._deal()
            attempt = self._seen[key]
            self._seen[key] += 1
            card = self._cards[key]
            failing = (card == "once" and attempt == 0) or (card == "twice" and attempt < 2)
            kind = FAULTS[self._failures % len(FAULTS)] if failing else "ok"
            self._failures += failing
            self.faults[kind] += 1
        if kind == "hang":
            return self._fake.hang(HANG_S)
        if kind == "429":
            return self._fake.rate_limited(retry_after=0)
        if kind == "503":
            return self._fake.unavailable()
        if kind == "reset":
            return self._fake.connection_reset()
        return _succeed(self._fake, request)


@pytest.fixture(scope="module")
def primary() -> Iterator[tuple[AnthropicFake, FlakyPrimary]]:
    with running(AnthropicFake()) as fake:
        flaky = FlakyPrimary(fake)
        fake.respond_with(flaky)
        yield fake, flaky


@pytest.fixture(scope="module")
def fallback() -> Iterator[OpenAIFake]:
    with running(OpenAIFake()) as fake:
        fake.respond_with(lambda request: _succeed(fake, request))
        yield fake


def _cli(home: Path, env: dict[str, str], *args: str) -> Result:
    """As the ``cli`` fixture runs it, once for the module: the task takes seconds to run."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    proc = subprocess.run(
        [sys.executable, "-m", "agentfirm", *args],
        env={**clean, "AGENTFIRM_HOME": str(home), "NO_COLOR": "1", **env},
        cwd=home.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@dataclass(frozen=True)
class Outcome:
    doc: dict[str, Any]
    """``run --json``."""
    costs: dict[str, Any]
    """``costs ID --json``."""
    faults: Counter[str]
    """What the primary answered, by kind (``ok``, ``hang``, ``429``, ``503``, ``reset``)."""
    requests: Counter[str]
    """Requests each fake received, by provider name."""


@pytest.fixture(scope="module")
def outcome(
    tmp_path_factory: pytest.TempPathFactory,
    primary: tuple[AnthropicFake, FlakyPrimary],
    fallback: OpenAIFake,
) -> Outcome:
    home = tmp_path_factory.mktemp("faults") / "home"
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "twelve.yaml").write_text(_persona_yaml(), encoding="utf-8")
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-api03-e2e-faults",
        "OPENAI_API_KEY": "sk-proj-e2e-faults",
        "ANTHROPIC_BASE_URL": primary[0].url,
        "OPENAI_BASE_URL": fallback.url + "/v1",
        "AGENTFIRM_TIERS__REASONING": CHAIN,
        "AGENTFIRM_TIERS__EXECUTION": CHAIN,
        "AGENTFIRM_TIERS__UTILITY": CHAIN,
        "AGENTFIRM_NO_DAEMON": "1",  # one process: no daemon left behind
        "AGENTFIRM_PROVIDER_TIMEOUT_S": str(TIMEOUT_S),
        # One answered call per module: the generated answers would always ask for research
        # and fail a checklist item, and those re-runs are not what this test counts.
        "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }
    result = _cli(home, env, "run", REQUEST, "--persona", "twelve", "--yes", "--json")
    assert result.code == 0, result.stderr[-4000:]
    doc = result.json()
    costs = _cli(home, env, "costs", doc["task_id"], "--json", "--all")
    assert costs.code == 0, costs.stderr[-4000:]
    received = Counter(anthropic=len(primary[0].requests), openai=len(fallback.requests))
    return Outcome(doc, costs.json(), Counter(primary[1].faults), received)


def test_a_twelve_module_task_completes_through_a_flaky_primary(outcome: Outcome) -> None:
    assert outcome.doc["status"] == "completed"
    assert set(MODULES) <= set(outcome.doc["cost"]["by_module"])
    assert sum(outcome.faults[kind] for kind in FAULTS) >= len(DECK) * 3 // 10
    assert all(outcome.faults[kind] for kind in FAULTS), outcome.faults


def test_every_hang_is_booked_at_its_reservation_as_the_router_gave_up_on_it(
    outcome: Outcome,
) -> None:
    # A hung attempt is received (so billed), then abandoned at the timeout: a cancelled row
    # that waited at least that long, booked at its reservation, flagged as an upper bound.
    hung_up = [c for c in outcome.costs["calls"] if c["outcome"] == "cancelled"]

    assert len(hung_up) == outcome.faults["hang"]
    assert all(c["latency_ms"] >= TIMEOUT_S * 1000 for c in hung_up), hung_up
    assert all(c["upper_bound"] and c["cost_usd"] > 0 for c in hung_up), hung_up


def test_the_ledger_shows_the_fallbacks(outcome: Outcome) -> None:
    calls = outcome.costs["calls"]
    errors = [c for c in calls if c["outcome"] == "error"]
    fell_back = {c["module_id"] for c in calls if c["provider"] == "openai"}

    assert errors
    assert {c["provider"] for c in errors} == {"anthropic"}
    assert fell_back, "no call was served by the fallback"
    for module in fell_back:
        tried = [(c["provider"], c["outcome"]) for c in calls if c["module_id"] == module]
        # The fallback's answer is the module's last row, after the primary's failures (unless
        # the primary's circuit had opened by then, which skips it).
        assert tried[-1] == ("openai", "ok"), (module, tried)
        # (a hang the primary got is ``cancelled``: booked, as it is billed)
        failed = {("anthropic", "error"), ("anthropic", "cancelled")}
        assert all(row in failed for row in tried[:-1]), (module, tried)
    assert any(
        [c["provider"] for c in calls if c["module_id"] == module][-3:]
        == ["anthropic", "anthropic", "openai"]
        for module in fell_back
    ), "no call fell back after its retry on the primary failed too"
    assert not any(c["simulated"] for c in calls)


def test_every_request_a_provider_received_has_exactly_one_ledger_row(outcome: Outcome) -> None:
    rows = Counter(c["provider"] for c in outcome.costs["calls"])

    assert rows == outcome.requests


def test_no_module_is_billed_twice_for_one_success(outcome: Outcome) -> None:
    calls = outcome.costs["calls"]
    ok_rows = Counter(c["module_id"] for c in calls if c["outcome"] == "ok")
    billed = [*MODULES, "_stitch", "_quality"]

    assert {module: ok_rows[module] for module in billed} == dict.fromkeys(billed, 1)
    assert all(c["cost_usd"] == 0 for c in calls if c["outcome"] == "error")


def test_the_ledger_sums_to_the_reported_total(outcome: Outcome) -> None:
    doc, costs = outcome.doc, outcome.costs
    ledger_nano = sum(round(c["cost_usd"] * 10**9) for c in costs["calls"])

    assert ledger_nano == round(doc["cost"]["total_usd"] * 10**9)
    assert costs["total_usd"] == doc["cost"]["total_usd"]
    assert sum(doc["cost"]["by_module"].values()) == pytest.approx(doc["cost"]["total_usd"])
