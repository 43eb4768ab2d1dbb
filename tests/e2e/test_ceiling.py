"""One ceiling covers the whole task, and the ledger is the bill (issue 17, done-when 1).

``run --budget … --yes --json`` in a subprocess, sixteen modules at once against a loopback
OpenAI fake that counts usage from each request as a real service does and bills on receipt.
The ceiling runs out mid-task: the run stops for budget (exit 3). What the fake billed —
intake (planning) included — stays under the ceiling, and the ledger equals it to the
nano-dollar.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfirm.errors import EXIT_BUDGET
from agentfirm.money import usd_to_nano
from tests.e2e.test_provider_faults_task import _cli, _succeed
from tests.fakes.http_fake import running
from tests.fakes.metering import Rates
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.e2e

MODEL = "gpt-5-mini"
# gpt-5-mini's list prices ($0.25 / $2.00 per million tokens), in nano-dollars a token.
RATES = Rates(input=250, output=2_000, cached_input=25)
CEILING_USD = "0.06"
"""Room for the plan and a few modules' worst cases, not for sixteen."""
MODULES = [f"part{n:02d}" for n in range(16)]


def _persona_yaml() -> str:
    persona = {
        "name": "Sixteen Parts",
        "description": "Sixteen independent modules, to run sixteen sub-agents at once.",
        "classification_keywords": ["sixteen parts"],
        "modules": [
            {
                "id": module,
                "title": f"Part {module}",
                "tier": "execution",
                "output_type": "research_notes",
                "brief": f"Research and write up {module} of the market.",
            }
            for module in MODULES
        ],
        "quality_checklist": ["Every part is covered."],
    }
    return json.dumps(persona, indent=2)  # JSON is YAML


def _home(tmp_path: Path, provider: OpenAIFake) -> tuple[Path, dict[str, str]]:
    """A home with the sixteen-part persona, and the environment serving every tier from
    ``provider``, in this process."""
    home = tmp_path / "home"
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "sixteen.yaml").write_text(_persona_yaml(), encoding="utf-8")
    chain = json.dumps([f"openai:{MODEL}"])
    env = {
        "OPENAI_API_KEY": "sk-proj-e2e-ceiling",
        "OPENAI_BASE_URL": provider.url + "/v1",
        "AGENTFIRM_TIERS__REASONING": chain,
        "AGENTFIRM_TIERS__EXECUTION": chain,
        "AGENTFIRM_TIERS__UTILITY": chain,
        "AGENTFIRM_NO_DAEMON": "1",
    }
    return home, env


@pytest.fixture(scope="module")
def provider() -> Iterator[OpenAIFake]:
    with running(OpenAIFake(rates={MODEL: RATES})) as fake:
        fake.respond_with(lambda request: _succeed(fake, request))
        yield fake


def test_the_ceiling_covers_intake_and_build_and_the_ledger_is_the_bill(
    tmp_path: Path, provider: OpenAIFake
) -> None:
    home, env = _home(tmp_path, provider)
    env |= {
        "AGENTFIRM_MAX_CONCURRENCY": "16",
        "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }
    request = "Write up the sixteen parts of the cargo-bike market"

    result = _cli(home, env, "run", request, "--budget", CEILING_USD, "--yes", "--json")

    assert result.code == EXIT_BUDGET, result.stderr[-4000:]
    assert "exceeds its budget" in result.stderr  # said before it ran
    task_id = result.json()["task_id"]
    costs = _cli(home, env, "costs", task_id, "--json", "--all")
    assert costs.code == 0, costs.stderr[-4000:]
    summary = costs.json()
    ledger_nano = sum(round(c["cost_usd"] * 1e9) for c in summary["calls"])
    assert ledger_nano == provider.bill.nano
    assert provider.bill.nano <= usd_to_nano(CEILING_USD)
    assert summary["intake_usd"] > 0
    assert summary["build_usd"] > 0
    served = {c["module_id"] for c in summary["calls"] if c["outcome"] == "ok"}
    assert served & set(MODULES)  # modules ran before the ceiling stopped the task


def test_a_ceiling_below_the_intakes_cost_is_not_passed_by_the_intake(
    tmp_path: Path, provider: OpenAIFake
) -> None:
    """Before issue 17 the intake ran under the default budget and ``--budget 0.001`` ended
    "spent $0.0019 of $0.0010"."""
    home, env = _home(tmp_path, provider)
    provider.reset()
    provider.respond_with(lambda request: _succeed(provider, request))

    result = _cli(home, env, "run", "the sixteen parts", "--budget", "0.001", "--yes", "--json")

    assert result.code != 0
    assert provider.bill.nano <= usd_to_nano("0.001")
