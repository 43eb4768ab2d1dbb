"""Whole tasks through the CLI with GitHub task repos, on the loopback GitHub (issue 7,
acceptance 3 and 4): no secret leaks anywhere, and a taken name or a bad token is one line and
exit 2 with nothing half-created."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli, Result
from tests.fakes.github import FakeGitHub, Request

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
LOGIN = "alice"
ORG = "acme"
GITHUB_TOKEN = "ghp_CANARYgithub" + "G7" * 14
CANARIES = {
    "ANTHROPIC_API_KEY": "sk-ant-api03-CANARYanthropic" + "A1" * 20,
    "OPENAI_API_KEY": "sk-proj-CANARYopenai" + "O2" * 20,
    "GEMINI_API_KEY": "AIzaSyCANARYgemini" + "M3" * 10,
    "GOOGLE_API_KEY": "AIzaSyCANARYgoogle" + "L4" * 10,
    "AGENTFIRM_OPENAI_COMPAT_API_KEY": "sk-CANARYcompat" + "C5" * 20,
    "GITHUB_TOKEN": GITHUB_TOKEN,
}


class _TakenNamesGitHub(FakeGitHub):
    """Every repo name asked for under the user is already someone else's: the task id is not
    known before the run, so the collision is made at the moment the CLI asks (a real repo, a
    real 422). Organizations' names are free."""

    def _create_user_repo(self, request: Request, login: str) -> tuple[int, Any]:
        name = str((request.body or {})["name"])
        if f"{login}/{name}" not in self.repos:
            self.add_repo(login, name, description="someone else's project")
        return super()._create_user_repo(request, login)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub({GITHUB_TOKEN: LOGIN}) as fake:
        yield fake


@pytest.fixture
def taken_github() -> Iterator[FakeGitHub]:
    with _TakenNamesGitHub({GITHUB_TOKEN: LOGIN}, orgs={ORG: {LOGIN}}) as fake:
        yield fake


def _github_env(fake: FakeGitHub, token: str = GITHUB_TOKEN) -> dict[str, str]:
    return {
        "AGENTFIRM_REPO_BACKEND": "github",
        "AGENTFIRM_GITHUB_API_URL": fake.url,
        "AGENTFIRM_OFFLINE_LATENCY_MS": "0",
        "GITHUB_TOKEN": token,
    }


def _run(cli: Cli, fake: FakeGitHub, **extra: str) -> Result:
    return cli("run", REQUEST, "--offline", "--yes", "--json", env={**_github_env(fake), **extra})


def _leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [name for name, value in CANARIES.items() if value.encode() in data]


def _events(db: Path, table: str) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [repr(tuple(row)) for row in conn.execute(f"SELECT * FROM {table}")]
    finally:
        conn.close()


def _creates(fake: FakeGitHub) -> list[str]:
    return [r.path for r in fake.requests if r.method == "POST" and r.path.endswith("/repos")]


def _writes(fake: FakeGitHub) -> list[str]:
    return [r.path for r in fake.requests if r.method in ("POST", "PATCH") and "/git/" in r.path]


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def _only_task(cli: Cli) -> dict[str, Any]:
    listed = cli("tasks", "list", "--json").json()
    assert len(listed) == 1
    task: dict[str, Any] = listed[0]
    return task


# ---------------------------------------------------------------------------- secrets canary
@pytest.fixture
def canary_run(cli: Cli, github: FakeGitHub, home: Path) -> tuple[Result, dict[str, Any]]:
    result = _run(cli, github, **CANARIES)
    assert result.code == 0, result.stderr
    doc: dict[str, Any] = result.json()
    return result, doc


def _full_name(fake: FakeGitHub) -> str:
    assert len(fake.repos) == 1
    return next(iter(fake.repos))


def test_the_github_token_reached_github_in_the_authorization_header(
    canary_run: tuple[Result, dict[str, Any]], github: FakeGitHub
) -> None:
    _result, doc = canary_run

    assert doc["status"] == "completed"
    assert doc["repo"] == f"{github.url}/{_full_name(github)}"
    assert github.requests
    assert all(r.headers["authorization"].endswith(GITHUB_TOKEN) for r in github.requests)


def test_no_canary_is_in_any_file_of_any_commit_of_the_task_repo(
    canary_run: tuple[Result, dict[str, Any]], github: FakeGitHub
) -> None:
    repo = github.repos[_full_name(github)]
    blobs = {sha: obj["data"] for sha, obj in repo.objects.items() if obj["type"] == "blob"}
    head = github.files(repo.full_name)

    assert "notebook.ipynb" in head
    assert set(head.values()) <= set(blobs.values())
    assert {name: _leaks(data) for name, data in head.items() if _leaks(data)} == {}
    assert {sha: _leaks(data) for sha, data in blobs.items() if _leaks(data)} == {}


def test_no_canary_is_in_any_commit_message(
    canary_run: tuple[Result, dict[str, Any]], github: FakeGitHub
) -> None:
    history = github.history(_full_name(github))

    assert len(history) >= 1
    assert [c["message"] for c in history if _leaks(c["message"])] == []


def test_no_canary_is_in_any_request_body_sent_to_github(
    canary_run: tuple[Result, dict[str, Any]], github: FakeGitHub
) -> None:
    bodies = [repr(r.body) + r.path + r.query for r in github.requests]

    assert [b for b in bodies if _leaks(b)] == []


def test_no_canary_is_in_any_event_of_the_bus_or_the_store(
    canary_run: tuple[Result, dict[str, Any]], home: Path
) -> None:
    bus = _events(home / "data" / "bus.db", "events")
    store = _events(home / "data" / "agentfirm.db", "events")

    assert bus
    assert store
    assert [e for e in bus + store if _leaks(e)] == []


def test_no_canary_is_in_any_file_under_home_or_the_cli_output(
    canary_run: tuple[Result, dict[str, Any]], home: Path
) -> None:
    result, _doc = canary_run
    files = [p for p in home.rglob("*") if p.is_file()]

    assert any(p.name == "agentfirm.log" for p in files)
    assert {str(p): _leaks(p.read_bytes()) for p in files if _leaks(p.read_bytes())} == {}
    assert _leaks(result.stdout) == []
    assert _leaks(result.stderr) == []


# ---------------------------------------------------------------------------- a taken name
def test_a_taken_repo_name_is_one_line_naming_the_repo_and_exit_2(
    cli: Cli, taken_github: FakeGitHub
) -> None:
    result = _run(cli, taken_github)

    assert result.code == 2
    line = _one_line(result.stderr)
    (full_name,) = taken_github.repos
    assert full_name.startswith(f"{LOGIN}/agentfirm-t")
    assert full_name in line
    assert "already exists" in line


def test_a_taken_repo_name_writes_nothing_to_github(cli: Cli, taken_github: FakeGitHub) -> None:
    _run(cli, taken_github)

    (full_name,) = taken_github.repos  # only the other owner's repo
    assert [c["message"] for c in taken_github.history(full_name)] == ["Initial commit"]
    assert _creates(taken_github) == ["/user/repos"]
    assert _writes(taken_github) == []


def test_a_taken_repo_name_leaves_the_task_visible_and_not_completed(
    cli: Cli, taken_github: FakeGitHub
) -> None:
    _run(cli, taken_github)

    task = _only_task(cli)
    assert task["status"] == "approved"
    shown = cli("tasks", "show", task["task_id"], "--json").json()
    assert shown["repo_path"] is None
    assert shown["deliverable_path"] is None


def test_a_task_stopped_by_a_taken_name_resumes_under_another_owner(
    cli: Cli, taken_github: FakeGitHub
) -> None:
    _run(cli, taken_github)
    task_id = _only_task(cli)["task_id"]

    env = {**_github_env(taken_github), "AGENTFIRM_GITHUB_OWNER": ORG}
    result = cli("resume", task_id, "--offline", "--yes", "--json", env=env)

    assert result.code == 0, result.stderr
    assert result.json()["status"] == "completed"
    assert result.json()["repo"] == f"{taken_github.url}/{ORG}/agentfirm-{task_id}"
    assert "notebook.ipynb" in taken_github.files(f"{ORG}/agentfirm-{task_id}")


# ---------------------------------------------------------------------------- a bad token
def test_a_bad_token_is_one_line_naming_github_token_and_exit_2(
    cli: Cli, github: FakeGitHub
) -> None:
    result = _run(cli, github, GITHUB_TOKEN="ghp_" + "x" * 36)

    assert result.code == 2
    line = _one_line(result.stderr)
    assert "GITHUB_TOKEN" in line
    assert "ghp_" + "x" * 36 not in line


def test_a_bad_token_creates_nothing_on_github(cli: Cli, github: FakeGitHub) -> None:
    _run(cli, github, GITHUB_TOKEN="ghp_" + "x" * 36)

    assert github.requests
    assert github.repos == {}
    assert _creates(github) == []
    assert _writes(github) == []
