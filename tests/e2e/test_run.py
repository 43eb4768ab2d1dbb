"""Whole tasks through the CLI, offline (issue 2's acceptance items)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import Cli

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"


def _ledger(home: Path, task_id: str) -> list[sqlite3.Row]:
    db = sqlite3.connect(home / "data" / "agentfirm.db")
    db.row_factory = sqlite3.Row
    try:
        return db.execute("SELECT * FROM ledger WHERE task_id = ?", (task_id,)).fetchall()
    finally:
        db.close()


def test_run_json_prints_one_document_and_commits_the_deliverable(cli: Cli) -> None:
    result = cli("run", REQUEST, "--offline", "--no-daemon", "--yes", "--json")

    assert result.code == 0, result.stderr
    doc = result.json()  # exactly one JSON document: json.loads rejects trailing output
    assert doc["status"] == "completed"
    assert doc["persona"] == "patent_research"
    assert set(doc) >= {"task_id", "status", "persona", "deliverable", "repo", "budget_usd", "cost"}
    cost = doc["cost"]
    assert cost["simulated"] is True
    assert cost["total_usd"] > 0
    assert {"prior_art_search", "_stitch", "_quality"} <= set(cost["by_module"])
    assert set(cost["by_tier"]) <= {"reasoning", "execution", "utility"}
    deliverable = Path(doc["deliverable"])
    assert deliverable.is_file()
    repo = Path(doc["repo"])
    tracked = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert {"deliverable.md", "spec.json", "quality.json", "costs.json"} <= set(tracked)
    assert any(name.endswith(".ipynb") for name in tracked)
    committed = subprocess.run(
        ["git", "-C", str(repo), "show", "HEAD:deliverable.md"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert committed == deliverable.read_text(encoding="utf-8")
    assert "SIMULATION" in committed.upper()


def test_the_task_repo_at_close_holds_every_output_the_draft_attachments_and_status(
    cli: Cli, tmp_path: Path
) -> None:
    brief = tmp_path / "brief.md"
    brief.write_text("The alloy self-heals at 180 C thanks to embedded indium capsules.\n")
    doc = cli(
        "run", REQUEST, "--offline", "--no-daemon", "--yes", "--json", "--attach", str(brief)
    ).json()
    repo = Path(doc["repo"])

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "show", f"HEAD:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    modules = [m for m in doc["cost"]["by_module"] if not m.startswith("_")]
    for module in modules:
        assert json.loads(show(f"outputs/{module}.json"))["module_id"] == module
    assert show("outputs/draft.md").strip()
    readme = show("README.md")
    assert "**Status:** completed" in readme
    assert "**Cost:** $" in readme
    assert "(simulated)" in readme
    assert "[`deliverable.md`](deliverable.md)" in readme
    assert "indium capsules" in show("attachments/brief.md")
    assert json.loads(show("attachments.json")) == {"documents": ["brief.md"]}


def test_ledger_has_a_row_per_call_and_sums_to_the_reported_total(cli: Cli, home: Path) -> None:
    doc = cli("run", REQUEST, "--offline", "--yes", "--json").json()

    rows = _ledger(home, doc["task_id"])
    costs = cli("costs", doc["task_id"], "--json", "--all").json()
    assert len(rows) == len(costs["calls"]) > 0
    assert {r["call_id"] for r in rows} == {c["call_id"] for c in costs["calls"]}
    total_nano = sum(r["cost_nano"] for r in rows)
    assert Decimal(total_nano) / 10**9 == pytest.approx(Decimal(str(doc["cost"]["total_usd"])))
    assert costs["total_usd"] == doc["cost"]["total_usd"]
    assert sum(doc["cost"]["by_module"].values()) == pytest.approx(doc["cost"]["total_usd"])


def test_budget_below_the_plan_exits_3_and_never_overspends(cli: Cli, home: Path) -> None:
    result = cli("run", REQUEST, "--offline", "--yes", "--json", "--budget", "0.05")

    assert result.code == 3, result.stderr
    doc = result.json()
    assert doc["status"] == "budget_exhausted"
    assert doc["budget_usd"] == 0.05
    rows = _ledger(home, doc["task_id"])
    spent = sum(r["cost_nano"] for r in rows)
    assert spent <= 50_000_000
    assert Decimal(spent) / 10**9 == pytest.approx(Decimal(str(doc["cost"]["total_usd"])))
    assert any(r["outcome"] == "budget_refused" for r in rows)
    shown = cli("tasks", "show", doc["task_id"], "--json").json()
    assert shown["status"] == "awaiting_budget"


def test_bad_settings_are_all_reported_in_one_message(cli: Cli) -> None:
    result = cli(
        "run",
        REQUEST,
        "--offline",
        "--yes",
        env={
            "AGENTFIRM_BUDGET_USD": "lots",
            "AGENTFIRM_TIERS__REASONING": '["nosuch:model-x"]',
        },
    )

    assert result.code == 2
    assert "Traceback" not in result.stderr
    assert "budget_usd" in result.stderr
    assert "nosuch" in result.stderr
    assert result.stdout == ""


def test_config_check_exits_2_without_traceback(cli: Cli) -> None:
    result = cli("config", "check", env={"AGENTFIRM_MAX_CONCURRENCY": "many"})

    assert result.code == 2
    assert "max_concurrency" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("fixture", "needle"),
    [
        ("syntax_error.yaml", "yaml"),
        ("cycle.yaml", "cycle"),
        ("unknown_dependency.yaml", "unknown"),
        ("unknown_tier.yaml", "tier"),
    ],
)
def test_personas_validate_names_file_line_and_problem(cli: Cli, fixture: str, needle: str) -> None:
    path = Path(__file__).parents[1] / "data" / "personas" / fixture

    result = cli("personas", "validate", str(path))

    assert result.code == 2
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[0]
    assert fixture in line
    assert line.split(fixture, 1)[1].startswith(":")  # file:LINE
    assert needle in result.stderr.lower()


def test_a_canary_key_is_written_nowhere_under_home(cli: Cli, home: Path) -> None:
    canary = "sk-ant-api03-CANARY" + "7" * 40
    env = {"ANTHROPIC_API_KEY": canary, "AGENTFIRM_OFFLINE_LATENCY_MS": "0"}

    assert cli("demo", env=env).code == 0
    assert cli("config", "show", "--json", env=env).code == 0
    assert cli("secrets", "list", env=env).code == 0

    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in files)
    assert any(p.name == "agentfirm.log" for p in files)
    assert any(p.name == "deliverable.md" for p in files)
    for path in files:
        assert canary.encode() not in path.read_bytes(), path
        assert b"CANARY" not in path.read_bytes(), path


def test_demo_shows_waves_progress_deliverable_and_simulated_costs(cli: Cli) -> None:
    result = cli("demo", env={"AGENTFIRM_OFFLINE_LATENCY_MS": "0"})

    assert result.code == 0, result.stderr
    out = result.stdout
    assert "wave 1:" in out
    assert "started" in out
    assert "done" in out
    assert "deliverable:" in out
    assert "SIMULATED" in out
    assert "total" in out
    # The research modules' agent loops ask for tools; a simulated model's calls are not run.
    assert "tool      fetch_url" in out
    assert "simulated: not run" in out


def test_unknown_task_is_bad_input(cli: Cli) -> None:
    result = cli("tasks", "show", "t_nope")

    assert result.code == 2
    assert "t_nope" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_interactive_run_without_yes_is_refused_before_anything_is_written(
    cli: Cli, home: Path
) -> None:
    result = cli("run", REQUEST, "--offline")

    assert result.code == 2
    assert "--yes" in result.stderr
    assert cli("tasks", "list", "--json").json() == []


def test_a_run_no_provider_can_serve_is_refused_before_a_task_is_written(cli: Cli) -> None:
    result = cli("run", REQUEST, "--yes")

    assert result.code == 2
    assert "--offline" in result.stderr
    assert "Traceback" not in result.stderr
    assert cli("tasks", "list", "--json").json() == []


def test_a_request_no_persona_matches_asks_for_one_under_yes(cli: Cli) -> None:
    result = cli("run", "write me a limerick about otters", "--offline", "--yes")

    assert result.code == 2
    assert "--persona" in result.stderr
    assert cli("tasks", "list", "--json").json() == []


def test_tasks_show_and_list_have_the_documented_json_shapes(cli: Cli) -> None:
    doc = cli("run", REQUEST, "--offline", "--yes", "--json").json()

    shown = cli("tasks", "show", doc["task_id"], "--json").json()
    assert shown["status"] == "completed"
    modules = {m["id"]: m for m in shown["modules"]}
    assert min(m["wave"] for m in modules.values()) == 1
    first = modules["prior_art_search"]
    assert set(first) >= {
        "id",
        "wave",
        "tier",
        "depends_on",
        "status",
        "attempts",
        "provider",
        "model",
        "started_at",
        "finished_at",
        "cost_usd",
    }
    assert first["status"] == "done"
    moves = [(t["from"], t["to"]) for t in shown["transitions"]]
    assert moves[0] == (None, "received")
    assert moves[-1] == ("assembling", "completed")
    assert all(t["actor"] and t["at"] for t in shown["transitions"])
    listed = cli("tasks", "list", "--json").json()
    assert [t["task_id"] for t in listed] == [doc["task_id"]]
    assert listed[0]["cost_usd"] == doc["cost"]["total_usd"]


def test_plan_prices_without_running_then_approve_runs_it(cli: Cli, home: Path) -> None:
    planned = cli("plan", REQUEST, "--offline", "--json")

    assert planned.code == 0, planned.stderr
    plan = planned.json()
    assert set(plan) >= {"persona", "modules", "waves", "estimate", "suggested_budget_usd"}
    assert 0 < plan["estimate"]["expected_usd"] <= plan["estimate"]["worst_usd"]
    assert plan["suggested_budget_usd"] >= plan["estimate"]["worst_usd"]
    # nothing ran: the only calls are the Master's own (clarification), none of a module
    assert all(row["module_id"].startswith("_") for row in _ledger(home, plan["task_id"]))
    shown = cli("tasks", "show", plan["task_id"], "--json").json()
    assert shown["status"] == "awaiting_plan_approval"

    done = cli("approve", plan["task_id"], "--offline", "--yes", "--json")

    assert done.code == 0, done.stderr
    result = done.json()
    assert result["status"] == "completed"
    assert result["budget_usd"] == plan["suggested_budget_usd"]
    assert result["cost"]["total_usd"] <= plan["estimate"]["worst_usd"]


def test_reject_a_planned_task_and_approving_it_afterwards_is_bad_input(cli: Cli) -> None:
    task_id = cli("plan", REQUEST, "--offline", "--json").json()["task_id"]

    rejected = cli("reject", task_id, "--reason", "not now", "--json")
    again = cli("approve", task_id, "--offline", "--yes")

    assert rejected.code == 0
    assert rejected.json() == {"task_id": task_id, "status": "rejected"}
    assert again.code == 2
    assert "rejected" in again.stderr
    assert "Traceback" not in again.stderr
    last = cli("tasks", "show", task_id, "--json").json()["transitions"][-1]
    assert (last["to"], last["reason"]) == ("rejected", "not now")


def test_a_task_runs_through_the_generated_notebook_in_a_kernel(cli: Cli) -> None:
    result = cli("run", REQUEST, "--offline", "--yes", "--json", "--runner", "notebook")

    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["status"] == "completed"
    events = cli("tasks", "show", doc["task_id"], "--json").json()
    assert all(m["status"] == "done" for m in events["modules"])
    assert any("runner notebook" in t["reason"] for t in events["transitions"])


def test_an_unknown_runner_is_bad_input(cli: Cli) -> None:
    result = cli("run", REQUEST, "--offline", "--yes", "--runner", "cloud")

    assert result.code == 2
    assert "inproc, notebook or colab" in result.stderr


def test_providers_shows_health_rows_and_the_tier_chains(cli: Cli) -> None:
    result = cli("providers", "--json", env={"AGENTFIRM_OFFLINE": "1"})

    assert result.code == 0, result.stderr
    data = result.json()
    assert [row["provider"] for row in data["providers"]] == ["offline"]
    assert data["providers"][0]["state"] == "closed"
    assert data["chains"]["reasoning"][0].startswith("offline:")


def test_providers_without_any_says_so_and_what_to_set_not_an_empty_table(cli: Cli) -> None:
    result = cli("providers")

    assert result.code == 0, result.stderr
    assert "no provider can serve a call" in result.stdout
    assert "error rate" not in result.stdout  # no table of nothing
    assert "reasoning  — (none)" in result.stdout
    assert "agentfirm secrets set" in result.stdout


def test_personas_new_writes_a_valid_persona_the_library_then_lists(cli: Cli, home: Path) -> None:
    created = cli("personas", "new", "grant_proposal")
    path = home / "config" / "personas" / "grant_proposal.yaml"

    assert created.code == 0, created.stderr
    assert cli("personas", "validate", str(path)).code == 0
    listed = {p["id"] for p in cli("personas", "list", "--json").json()}
    assert "grant_proposal" in listed
    assert cli("personas", "new", "grant_proposal").code == 2  # never overwrites


def test_tasks_cancel_aborts_a_waiting_task_once(cli: Cli) -> None:
    task_id = cli("plan", REQUEST, "--offline", "--json").json()["task_id"]

    cancelled = cli("tasks", "cancel", task_id, "--reason", "changed my mind", "--json")
    again = cli("tasks", "cancel", task_id)

    assert cancelled.code == 0, cancelled.stderr
    assert cancelled.json() == {"task_id": task_id, "status": "aborted"}
    last = cli("tasks", "show", task_id, "--json").json()["transitions"][-1]
    assert (last["to"], last["reason"]) == ("aborted", "changed my mind")
    assert again.code == 2
    assert "already aborted" in again.stderr
