"""A refused key and an overrun are said in one wording wherever a person watches: the CLI's
line, the TUI's event log, a reply in the task's Slack thread."""

from __future__ import annotations

from typing import Any

from agentfirm.tui.widgets.events import summary

from agentfirm.domain.notices import notice_text
from agentfirm.slack.follower import Followers
from agentfirm.slack.progress import Progress
from agentfirm.slack.prompts import Message
from agentfirm.slack.threads import TaskThread, ThreadBook

REFUSED = {
    "type": "provider.key_refused",
    "seq": 3,
    "payload": {"provider": "anthropic", "key": "ANTHROPIC_API_KEY", "took_over": "openai:gpt-5"},
}


def test_the_notice_names_the_key_and_what_took_over() -> None:
    text = notice_text(REFUSED["type"], REFUSED["payload"])
    assert text is not None
    assert "anthropic refused its key ANTHROPIC_API_KEY; openai:gpt-5 took over" in text
    assert notice_text("module.started", {}) is None


def test_the_tui_event_log_shows_it() -> None:
    assert "ANTHROPIC_API_KEY" in summary(REFUSED)


class Out:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str | None, Message]] = []

    async def post(self, channel: str, thread_ts: str | None, message: Message) -> str:
        self.posted.append((channel, thread_ts, message))
        return "1.1"

    async def edit(self, channel: str, ts: str, message: Message) -> None:
        return None


class Clock:
    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        return None


async def test_the_slack_thread_gets_a_reply_saying_it() -> None:
    out = Out()
    followers = Followers(out, daemon=None, book=ThreadBook(None), clock=Clock())  # type: ignore[arg-type]
    thread = TaskThread("t1", "C1", "100.1", "100.2", "U1")
    followers._progress["t1"] = Progress("t1")
    event: dict[str, Any] = dict(REFUSED)

    await followers.handle_event(thread, event)

    [(channel, thread_ts, message)] = out.posted
    assert (channel, thread_ts) == ("C1", "100.1")
    assert "ANTHROPIC_API_KEY" in message.text


STOPPED = {
    "type": "task.result",
    "seq": 4,
    "payload": {
        "error": "configuration problem: mcp:notes could not start `x`: No such file or "
        "directory (check the command of 'notes' in mcp.json)",
        "exit_code": 2,
    },
}


async def test_a_task_the_daemon_stopped_says_why_in_the_thread_and_the_event_log() -> None:
    """A run stopped before it spends (a broken MCP server) is not left silent outside the CLI:
    the Slack thread gets the CLI's line, the TUI's event log shows it."""
    out = Out()
    followers = Followers(out, daemon=None, book=ThreadBook(None), clock=Clock())  # type: ignore[arg-type]
    thread = TaskThread("t1", "C1", "100.1", "100.2", "U1")
    followers._progress["t1"] = Progress("t1")

    await followers.handle_event(thread, dict(STOPPED))
    await followers.handle_event(thread, {"type": "task.result", "seq": 5, "payload": {}})

    [(_channel, _ts, message)] = out.posted
    assert "stopped: configuration problem: mcp:notes could not start" in message.text
    assert "check the command of 'notes' in mcp.json" in summary(STOPPED)
