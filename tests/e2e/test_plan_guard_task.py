"""``run --yes`` with a planner that drops the modules covering checklist items (issue 20): the
plan says which items lose coverage and why, and ``--yes`` refuses it — the task ends rejected,
exit 4, with one line saying why, and no module runs. The planner is a small model behind an
Ollama-shaped server that keeps only the last module, as one did in a real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentfirm.errors import EXIT_REJECTED
from tests.e2e.conftest import Cli
from tests.e2e.test_openai_compat_task import REQUEST, compat_env, persona_json
from tests.fakes.compat_servers import OllamaServer
from tests.fakes.http_fake import Recorded, Reply, running

pytestmark = pytest.mark.e2e

WHY = "The client only asked for a recommendation."


class TerseModel(OllamaServer):
    """Keeps only the recommendation when planning, and says why the other items go."""

    def _cooperate(self, request: Recorded) -> Reply:
        body = request.body if isinstance(request.body, dict) else {}
        text = json.dumps(body.get("messages") or [])
        if "# Template modules" not in text:
            return super()._cooperate(request)
        plan: dict[str, Any] = {
            "rationale": "Straight to the answer.",
            "modules": [
                {
                    "id": "recommendation",
                    "title": "Recommendation",
                    "brief": "Recommend.",
                    "tier": "reasoning",
                    "depends_on": [],
                    "output_type": "recommendation",
                }
            ],
            "uncovered": [{"item": 1, "why": WHY}, {"item": 2, "why": WHY}],
        }
        return self.structured(plan)(request)


def test_yes_refuses_a_plan_that_leaves_checklist_items_uncovered(cli: Cli, home: Path) -> None:
    personas = home / "config" / "personas"
    personas.mkdir(parents=True)
    (personas / "three.yaml").write_text(persona_json(), encoding="utf-8")
    with running(TerseModel()) as fake:
        env = compat_env(fake.url)
        run = cli("run", REQUEST, "--persona", "three", "--yes", "--json", env=env)
        shown = cli("tasks", "show", run.json()["task_id"], "--json", env=env)

    assert run.code == EXIT_REJECTED, run.stderr[-4000:]
    assert run.json()["status"] == "rejected"
    transitions = json.dumps(shown.json())
    assert "--yes refuses a plan that leaves 2 quality checklist item(s) uncovered" in transitions
    assert WHY in transitions
