"""A refused key is said once, and the ledger is what the providers billed (issue 17).

The CLI runs a whole task (intake, planning, twelve modules, stitching) in a subprocess with
``--json`` against two loopback fakes: Anthropic, the primary, refuses its key (401); OpenAI
takes over. stderr carries one line naming ``ANTHROPIC_API_KEY`` and what took over; the
ledger's total equals, to the nano-dollar, what the OpenAI fake billed at its own prices.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_provider_faults_task import CHAIN, REQUEST, _cli, _persona_yaml, _succeed
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.http_fake import running
from tests.fakes.metering import Rates
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.e2e

FALLBACK_MODEL = "gpt-5-mini"
# gpt-5-mini's list prices ($0.25 / $2.00 per million tokens), in nano-dollars a token.
FALLBACK_RATES = Rates(input=250, output=2_000, cached_input=25)


@pytest.fixture(scope="module")
def refusing() -> Iterator[AnthropicFake]:
    with running(AnthropicFake()) as fake:
        fake.respond_with(lambda request: fake.unauthorized())
        yield fake


@pytest.fixture(scope="module")
def fallback() -> Iterator[OpenAIFake]:
    with running(OpenAIFake(rates={FALLBACK_MODEL: FALLBACK_RATES})) as fake:
        fake.respond_with(lambda request: _succeed(fake, request))
        yield fake


def test_a_refused_key_is_one_line_and_the_ledger_is_the_bill(
    tmp_path: Path, refusing: AnthropicFake, fallback: OpenAIFake
) -> None:
    home = tmp_path / "home"
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "twelve.yaml").write_text(_persona_yaml(), encoding="utf-8")
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-api03-e2e-refused",
        "OPENAI_API_KEY": "sk-proj-e2e-refused",
        "ANTHROPIC_BASE_URL": refusing.url,
        "OPENAI_BASE_URL": fallback.url + "/v1",
        "AGENTFIRM_TIERS__REASONING": CHAIN,
        "AGENTFIRM_TIERS__EXECUTION": CHAIN,
        "AGENTFIRM_TIERS__UTILITY": CHAIN,
        "AGENTFIRM_NO_DAEMON": "1",
        "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }

    result = _cli(home, env, "run", REQUEST, "--persona", "twelve", "--yes", "--json")

    assert result.code == 0, result.stderr[-4000:]
    said = [line for line in result.stderr.splitlines() if "ANTHROPIC_API_KEY" in line]
    assert len(said) == 1, result.stderr[-4000:]
    assert re.search(
        r"anthropic refused its key ANTHROPIC_API_KEY; openai:gpt-5-mini took over", said[0]
    )
    doc = result.json()
    costs = _cli(home, env, "costs", doc["task_id"], "--json", "--all")
    assert costs.code == 0, costs.stderr[-4000:]
    ledger_nano = sum(round(c["cost_usd"] * 1e9) for c in costs.json()["calls"])
    assert len(refusing.requests) >= 1
    assert ledger_nano == fallback.bill.nano > 0
