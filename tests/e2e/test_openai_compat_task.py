"""A whole task on ``openai_compat`` against servers shaped like llama-cpp-python's, Ollama's and
vLLM's OpenAI endpoints (issue 20, "Done when" 5): every tier is ``openai_compat:MODEL``, the CLI
runs in a subprocess with the real ``openai`` SDK, and each server takes structured output only
in the shapes it documents (``tests/fakes/compat_servers.py``). The provider negotiates the
shape once per server and model; a refused shape is not billed, so the ledger books exactly the
requests the server answered, at what it billed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli, Result
from tests.fakes.compat_servers import SERVERS
from tests.fakes.http_fake import running
from tests.fakes.metering import Rates

pytestmark = pytest.mark.e2e

MODEL = "qwen2.5:7b-instruct"
REQUEST = "Assess moving a regional bus operator's ticketing to contactless payments"
MODULES = [
    ("scope", [], "Scope and constraints are stated."),
    ("options", ["scope"], "At least two options are compared."),
    ("recommendation", ["scope", "options"], "The recommendation follows from the options."),
]


def persona_json() -> str:
    persona = {
        "name": "Three Modules",
        "description": "A 3-module engagement used to test local OpenAI-compatible servers.",
        "classification_keywords": ["three modules"],
        "modules": [
            {
                "id": module,
                "title": f"The {module} module",
                "tier": "reasoning" if module == "recommendation" else "execution",
                "depends_on": deps,
                "output_type": "recommendation" if module == "recommendation" else "research_notes",
                "brief": f"Research and write up the {module} of the payments move.",
                "covers": [number],
            }
            for number, (module, deps, _) in enumerate(MODULES, start=1)
        ],
        "quality_checklist": [item for _, _, item in MODULES],
    }
    return json.dumps(persona, indent=2)  # JSON is YAML


def compat_env(url: str) -> dict[str, str]:
    """Every tier on ``openai_compat:MODEL`` at the server at ``url``, priced."""
    chain = json.dumps([f"openai_compat:{MODEL}"])
    return {
        "AGENTFIRM_OPENAI_COMPAT_BASE_URL": f"{url}/v1",
        "AGENTFIRM_TIERS__REASONING": chain,
        "AGENTFIRM_TIERS__EXECUTION": chain,
        "AGENTFIRM_TIERS__UTILITY": chain,
        "AGENTFIRM_PRICES": json.dumps(
            {MODEL: {"input_per_mtok": "0.1", "output_per_mtok": "0.2"}}
        ),
    }


def _run(cli: Cli, home_env: dict[str, str]) -> tuple[Result, Result]:
    run = cli("run", REQUEST, "--persona", "three", "--yes", "--json", env=home_env)
    assert run.code == 0, run.stderr[-4000:]
    costs = cli("costs", run.json()["task_id"], "--json", "--all", env=home_env)
    assert costs.code == 0, costs.stderr[-4000:]
    return run, costs


# The shape each server ends up taking. vLLM takes ``json_schema`` until a schema uses a keyword
# xgrammar refuses; llama-cpp-python refuses it at once.
SETTLED = {"llama-cpp-python": "json_object", "ollama": "json_schema", "vllm": "json_object"}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_a_task_completes_on_a_local_openai_compatible_server(
    server: str, cli: Cli, home: Path
) -> None:
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "three.yaml").write_text(persona_json(), encoding="utf-8")
    with running(SERVERS[server]()) as fake:
        env = {
            **compat_env(fake.url),
            "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
            "AGENTFIRM_QUALITY_REVISION": "false",
        }
        run, costs = _run(cli, env)
        shapes = list(fake.shapes)
        received = len(fake.requests)
        fake.bill.rates[MODEL] = Rates(input=100, output=200)
        billed_nano = fake.bill.nano
        billed_count = len(fake.bill.items)

    doc = run.json()
    assert doc["status"] == "completed"
    assert {m for m, _, _ in MODULES} <= set(doc["cost"]["by_module"])
    # Negotiated once, then straight to the accepted shape for every later structured call
    # (the modules run one after another, so no two calls are refused at once).
    refused_at = [i for i, (_, ok) in enumerate(shapes) if not ok]
    settled = SETTLED[server]
    if settled == "json_schema":
        assert refused_at == []
    else:
        [i] = refused_at
        assert shapes[i] == ("json_schema", False)
        assert set(shapes[:i]) <= {("json_schema", True)}
        assert set(shapes[i + 1 :]) == {(settled, True)}
        assert len(shapes) - i > 3  # modules, stitch, quality: all in the settled shape
    assert server != "llama-cpp-python" or refused_at == [0]
    # The ledger books every request the server answered, at what it billed; the refused one
    # generated nothing and is billed nothing.
    calls = costs.json()["calls"]
    assert len(calls) == billed_count == received - len(refused_at)
    assert all(c["provider"] == "openai_compat" and c["outcome"] == "ok" for c in calls)
    ledger_nano = sum(round(c["cost_usd"] * 10**9) for c in calls)
    assert ledger_nano == billed_nano > 0
