"""The Slack front end end to end (issue 10, acceptance 1): ``agentfirm slack`` in HTTP mode as
its own process, the daemon it starts, offline tasks, and the loopback Slack. A whole task runs
from a mention to the final summary with every question answered from the thread."""

from __future__ import annotations

import json
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cli
from tests.fakes.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    Payload,
    Posted,
    click,
    mention,
    text_input,
    thread_reply,
)

pytestmark = pytest.mark.e2e

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
ALLOWED = "U0ALLOWED"
CHANNEL = "C0PATENTS"
THREAD = "1690000000.000100"
# The command as `agentfirm slack` runs it (cli.py registers the same function).
SLACK_APP = "import typer; from agentfirm.cli.commands.slack import slack; typer.run(slack)"
PROMPTS = ("A few questions", "Plan ready", "Budget reached", "draft is ready", "failed")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


@pytest.fixture
def slack_env(cli_env: dict[str, str], fake: FakeSlack) -> dict[str, str]:
    return {
        **cli_env,
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "AGENTFIRM_SLACK_API_URL": fake.api_url,
        "AGENTFIRM_SLACK_ALLOWED_USERS": ALLOWED,
        "AGENTFIRM_SLACK_MODE": "http",
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def slack_app(cli: Cli, slack_env: dict[str, str]) -> Iterator[str]:
    """``agentfirm slack --mode http --port P --offline`` running; its events URL. Stopped with
    SIGTERM (exit 0), then the daemon it started."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", SLACK_APP, "--port", str(port), "--offline"],
        env=slack_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert "listening on" in line, (line, proc.stderr.read() if proc.poll() else "")
        yield f"http://127.0.0.1:{port}/slack/events"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        cli("daemon", "stop")


def _post(url: str, payload: Payload) -> None:
    response = httpx.post(url, content=payload.body, headers=payload.headers(), timeout=30)
    assert response.status_code == 200, response.text


def _next_prompt(fake: FakeSlack, answered: set[str]) -> Posted:
    """The next question (or the final summary) posted in the thread."""

    def find(slack: FakeSlack) -> Posted | None:
        for message in slack.thread(CHANNEL, THREAD):
            first = message.history[0]
            if message.ts not in answered and (
                any(p in first for p in PROMPTS) or first.startswith("Task ")
            ):
                return message
        return None

    return fake.wait_for(find, timeout=60)


def _button(message: Posted, action_id: str) -> str:
    for block in message.blocks:
        for element in block.get("elements", ()):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in {message.text!r}")


def _initial(message: Posted) -> str | None:
    field = next((b for b in message.blocks if b.get("block_id") == "af_budget"), None)
    return None if field is None else field["element"].get("initial_value")


def _answer(url: str, message: Posted, answers: list[str]) -> None:
    """Answer ``message`` as the allowed user would; records what was answered."""
    first = message.history[0]

    def press(action_id: str, values: dict[str, Any] | None = None) -> None:
        payload = click(
            action_id,
            _button(message, action_id),
            user=ALLOWED,
            channel=CHANNEL,
            message_ts=message.ts,
            thread_ts=THREAD,
            values=values,
        )
        _post(url, payload)
        answers.append(action_id)

    if "A few questions" in first:
        reply = thread_reply(
            "Europe and the US\n2015 onwards\nfocus on tin-based alloys",
            user=ALLOWED,
            channel=CHANNEL,
            ts=f"1690000001.{len(answers):06d}",
            thread_ts=THREAD,
        )
        _post(url, reply)
        answers.append("reply")
    elif "Plan ready" in first:
        press("af_plan_approve", text_input("af_budget", "af_budget_value", "0.30"))
    elif "Budget reached" in first:
        press("af_budget_add", text_input("af_budget", "af_budget_value", _initial(message)))
    elif "draft is ready" in first:
        press("af_review_approve")
    else:
        press("af_failure_retry")


def test_a_whole_task_runs_from_a_mention_to_the_final_summary(
    cli: Cli, fake: FakeSlack, slack_app: str, home: Path
) -> None:
    _post(slack_app, mention(REQUEST, user=ALLOWED, channel=CHANNEL, ts=THREAD))
    answers: list[str] = []
    answered: set[str] = set()
    while True:
        message = _next_prompt(fake, answered)
        answered.add(message.ts)
        if message.history[0].startswith("Task "):
            summary = message
            break
        assert len(answered) < 25, [m.history[0] for m in fake.thread(CHANNEL, THREAD)]
        _answer(slack_app, message, answers)

    (task,) = cli("tasks", "list", "--json").json()
    shown = cli("tasks", "show", task["task_id"], "--json").json()
    thread = fake.thread(CHANNEL, THREAD)
    progress = thread[0]
    questions = [m for m in thread if any(p in m.history[0] for p in PROMPTS)]
    text = json.dumps(summary.blocks)
    deliverable = re.search(r"Deliverable: `([^`]+)`", text)

    asked = [m.history[0] for m in thread]
    assert shown["status"] == "completed"
    assert "af_plan_approve" in answers, asked
    assert "af_review_approve" in answers, asked
    assert "af_budget_add" in answers, asked  # approved at $0.30, below the estimate
    # One progress message, edited in place to the end.
    assert "Received" in progress.history[0]
    assert progress.edits >= 2, progress.history
    assert "*completed*" in progress.text
    assert "✅" in progress.text
    # Every question was answered from the thread and now says by whom.
    assert all(f"by <@{ALLOWED}>" in m.text for m in questions)
    # The final summary: status, the deliverable on disk, the cost table.
    assert f"Task {task['task_id']} completed" in summary.text
    assert deliverable is not None
    assert Path(deliverable[1]).is_file()
    assert "Total cost $" in text
    assert "By module" in text
    assert "By provider" in text
    assert "simulated" in text
    # The transition log names the Slack user who decided.
    assert any(f"slack:{ALLOWED}" in t["actor"] + t["reason"] for t in shown["transitions"])
    # No secret reached any log.
    logs = "".join(p.read_text(errors="replace") for p in (home / "state").glob("*.log"))
    assert "slack.task_created" in logs  # the Slack app's own log is among them
    assert BOT_TOKEN not in logs
    assert SIGNING_SECRET not in logs


def test_missing_slack_settings_are_one_line_and_exit_2(
    cli_env: dict[str, str], home: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SLACK_APP, "--mode", "http"],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert "SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET" in proc.stderr
    assert "AGENTFIRM_SLACK_ALLOWED_USERS" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (home / "run" / "agentfirm.pid").exists()  # nothing started
