"""``tools list``, ``config check`` and ``plan`` with broken MCP servers, a run that needs one,
and ``tasks transcript``, through the real CLI."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import DAEMON, Cli
from tests.fakes.http_fake import running
from tests.fakes.notes_task import REQUEST as NOTES_REQUEST
from tests.fakes.notes_task import SERVER as NOTES_SERVER
from tests.fakes.notes_task import NotesModel, world_env
from tests.fakes.openai_fake import OpenAIFake

BIN = Path(sys.executable).parent


def _mcp_json(tmp_path: Path) -> Path:
    """A working server (the real mcp-server-fetch) and the three ways a server breaks: a
    command that does not exist, one that dies on start saying why, one that never answers."""
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.stderr.write('missing FOO_TOKEN\\n')\nsys.exit(3)\n")
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(600)\n")
    path = tmp_path / "mcp.json"
    servers = {
        "fetch": {"command": str(BIN / "mcp-server-fetch")},
        "nosuch": {"command": str(tmp_path / "no-such-server")},
        "crash": {"command": sys.executable, "args": [str(crash)]},
        "hang": {"command": sys.executable, "args": [str(hang)]},
    }
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "AGENTFIRM_MCP_CONFIG": str(_mcp_json(tmp_path)),
        "AGENTFIRM_MCP_START_TIMEOUT_S": "5",
    }


def test_tools_list_shows_each_tool_its_source_and_why_a_server_is_broken(
    cli: Cli, tmp_path: Path
) -> None:
    result = cli("tools", "list", "--json", env=_env(tmp_path))
    assert result.code == 0, result.stderr
    rows = {row["name"]: row for row in result.json()}
    assert rows["fetch_url"]["source"] == "builtin"
    assert rows["web_search"]["source"] == "provider"
    fetch = rows["mcp:fetch/fetch"]
    assert (fetch["source"], fetch["ok"], fetch["side_effects"]) == ("mcp", True, False)
    assert "No such file" in rows["mcp:nosuch"]["reason"]
    assert "missing FOO_TOKEN" in rows["mcp:crash"]["reason"]
    assert "did not answer within 5s" in rows["mcp:hang"]["reason"]
    for name in ("mcp:nosuch", "mcp:crash", "mcp:hang"):
        assert not rows[name]["ok"]
        assert "\n" not in rows[name]["reason"]


def test_config_check_exits_2_naming_every_broken_server(cli: Cli, tmp_path: Path) -> None:
    result = cli("config", "check", env=_env(tmp_path))
    assert result.code == 2
    assert "Traceback" not in result.stderr
    for name in ("mcp:nosuch", "mcp:crash", "mcp:hang"):
        assert name in result.stderr
    assert "mcp:fetch" not in result.stderr


def test_an_invalid_mcp_json_is_bad_config(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    path.write_text('{"mcpServers": {"x": {"args": []}}}')
    result = cli("tools", "list", env={"AGENTFIRM_MCP_CONFIG": str(path)})
    assert result.code == 2
    assert str(path) in result.stderr
    assert "command" in result.stderr


def test_transcript_shows_turns_and_simulated_tool_calls(cli: Cli) -> None:
    doc = cli("run", "Prior art search for a self-heating mug", "--offline", "--yes", "--json")
    task_id = doc.json()["task_id"]

    result = cli("tasks", "transcript", task_id, "--module", "prior_art_search", "--json")
    assert result.code == 0, result.stderr
    entries = result.json()["entries"]
    assert [e["kind"] for e in entries] == ["model", "tool", "model"]
    first, tool, last = entries
    assert first["tool_calls"][0]["name"] == "fetch_url"
    assert any(m["role"] == "system" for m in first["sent"])
    assert tool["simulated"]
    assert tool["tool"] == "fetch_url"
    assert last["data"]["findings"]
    assert {e["module_id"] for e in entries} == {"prior_art_search"}

    human = cli("tasks", "transcript", task_id, "--module", "prior_art_search")
    assert "simulated: not run" in human.stdout
    assert "turn 2" in human.stdout
    assert cli("tasks", "transcript", "t_nope").code == 2
    # The run left its daemon running, which answered the above; the store says the same.
    here = cli(
        "tasks", "transcript", task_id, "--module", "prior_art_search", "--json", "--no-daemon"
    )
    assert here.code == 0, here.stderr
    assert here.json() == result.json()
    nope = cli("tasks", "transcript", "t_nope", "--no-daemon")
    assert (nope.code, nope.stderr) == (2, cli("tasks", "transcript", "t_nope").stderr)


def test_a_server_that_prints_its_token_when_it_fails_does_not_leak_it(
    cli: Cli, tmp_path: Path, home: Path
) -> None:
    canary = "tok-CANARY-" + "7" * 30
    script = tmp_path / "leaky.py"
    script.write_text(
        "import os, sys\nsys.stderr.write('bad token ' + os.environ['SEARCH_TOKEN'] + '\\n')\n"
        "sys.exit(1)\n"
    )
    path = tmp_path / "mcp.json"
    server = {"command": sys.executable, "args": [str(script)], "env": {"SEARCH_TOKEN": canary}}
    path.write_text(json.dumps({"mcpServers": {"leaky": server}}))
    env = {"AGENTFIRM_MCP_CONFIG": str(path)}

    listed = cli("tools", "list", "--json", env=env)
    checked = cli("config", "check", env=env)

    [row] = [r for r in listed.json() if r["name"] == "mcp:leaky"]
    assert "bad token [redacted]" in row["reason"]
    assert checked.code == 2
    for output in (listed.stdout, listed.stderr, checked.stdout, checked.stderr):
        assert "CANARY" not in output
    for file in (p for p in home.rglob("*") if p.is_file()):
        assert b"CANARY" not in file.read_bytes(), file


@pytest.fixture
def broken_notes(home: Path, tmp_path: Path) -> Iterator[tuple[dict[str, str], OpenAIFake]]:
    """The notes world (``tests/fakes/notes_task.py``) with its server's command missing."""
    with running(OpenAIFake()) as fake:
        fake.respond_with(NotesModel(fake))
        env = world_env(home, tmp_path / "notebook.txt", fake.url)
        broken = {"notes": {"command": str(tmp_path / "no-such-server")}}
        Path(env["AGENTFIRM_MCP_CONFIG"]).write_text(json.dumps({"mcpServers": broken}))
        yield env, fake


@pytest.mark.parametrize("daemon", [False, True], ids=["no-daemon", "daemon"])
def test_a_run_needing_a_broken_server_stops_before_spending(
    cli: Cli, broken_notes: tuple[dict[str, str], OpenAIFake], daemon: bool
) -> None:
    """Issue 18, "Done when" 5: exit 2 and one line naming the server and the fix, the same
    in-process and through the daemon; nothing on the ledger, no model asked."""
    env, fake = broken_notes
    notebook = Path(env["AGENTFIRM_MCP_CONFIG"]).parent / "notebook.txt"
    via = {**env, **(DAEMON if daemon else {})}
    run = cli("run", NOTES_REQUEST, "--yes", env=via)

    assert run.code == 2, run.stderr[-3000:]
    [line] = [line for line in run.stderr.splitlines() if line.strip()]
    assert line.startswith("agentfirm: error: configuration problem: mcp:notes could not start")
    assert "check the command of 'notes' in mcp.json" in line
    # `plan` warns of it up front (a second task, planned, waits for approval); approving that
    # plan stops before it is put to anyone, in the same words in-process and through the daemon.
    shown = cli("plan", NOTES_REQUEST, env=env)
    assert shown.code == 0, shown.stderr
    warning = "⚠ a tool this plan needs is unavailable: mcp:notes could not start"
    assert shown.stdout.lstrip().startswith(warning)
    planned = re.findall(r"task (t_\w+) awaits approval", shown.stdout)[0]
    approved = cli("approve", planned, "--yes", env=via)
    assert approved.code == 2, approved.stdout[-3000:]
    [stop] = [line for line in approved.stderr.splitlines() if line.strip()]
    assert stop.startswith("agentfirm: error: configuration problem: mcp:notes could not start")
    assert stop.endswith(
        f"(check the command of 'notes' in mcp.json); task {planned} stopped before its plan was "
        f"approved: fix it, then agentfirm approve {planned}"
    )
    tasks = {t["task_id"]: t for t in cli("tasks", "list", "--json", env=env).json()}
    assert tasks.pop(planned)["status"] == "awaiting_plan_approval"
    [task] = tasks.values()
    assert f"then agentfirm resume {task['task_id']}" in line
    assert task["status"] == "classified"
    assert task["cost_usd"] == 0  # the ledger's total: no offline intake call either
    assert fake.requests == []
    if not daemon:
        # What the line says to do: fix the server, then resume.
        server = {"command": sys.executable, "args": [str(NOTES_SERVER), str(notebook)]}
        Path(env["AGENTFIRM_MCP_CONFIG"]).write_text(json.dumps({"mcpServers": {"notes": server}}))
        resumed = cli("resume", task["task_id"], "--yes", "--json", env=env)
        assert resumed.code == 0, resumed.stdout[-3000:]
        assert resumed.json()["status"] == "completed"
