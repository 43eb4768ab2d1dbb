"""The event log: one line per event, filterable, following live (toggle to stop and scroll)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, RichLog

from agentfirm.domain.notices import notice_text

from ..fmt import STATUS_STYLE, clip, parse_time, usd
from ..wording import for_tui

_TYPE_STYLE = {
    "task": "magenta",
    "module": "cyan",
    "cost": "green",
    "approval": "bold magenta",
    "budget": "bold red",
    "build": "blue",
    "draft": "bold blue",
    "quality": "blue",
    "runner": "bold blue",
    "provider": "bold red",
}


def _tool_outcome(p: dict[str, Any]) -> str:
    """What became of a tool call, in a word or two (as the transcript says it)."""
    if p.get("simulated"):
        return "simulated"
    if p.get("denied"):
        return "denied"
    if p.get("interrupted"):
        return "interrupted by a crash: not run again"
    if p.get("malformed"):
        return "invalid arguments"
    if p.get("is_error"):
        return "error"
    return f"{len(str(p.get('content', '')))} chars"


def summary(event: dict[str, Any]) -> str:
    """What happened, in a few words, from the event's payload."""
    kind = str(event.get("type", ""))
    p: dict[str, Any] = event.get("payload") or {}
    if kind == "task.transition":
        reason = f" ({clip(for_tui(str(p['reason'])), 60)})" if p.get("reason") else ""
        return f"{p.get('from')} → {p.get('to')}{reason}"
    if kind == "cost.updated":
        return f"{usd(p.get('cost_usd'))} {p.get('tier', '')} {p.get('model', '')} · spent " + usd(
            p.get("spent_usd")
        )
    if kind == "module.started":
        return f"attempt {p.get('attempt', 1)} · {p.get('tier', '')}"
    if kind == "module.completed":
        return f"{usd(p.get('cost_usd'))} · {p.get('provider', '')} {p.get('model', '')}"
    if kind == "task.result" and p.get("error"):  # the daemon stopped driving it, and why
        return f"stopped: {for_tui(str(p['error']))}"
    if kind in ("module.failed", "module.retrying"):
        return clip(for_tui(str(p.get("error", ""))), 80)
    if kind == "runner.launched":
        return f"{p.get('runner', '')} run {p.get('run_id', '')} {p.get('url') or ''}".strip()
    if kind == "approval.requested":
        return f"{p.get('kind')}: {clip(str(p.get('question', '')), 80)}"
    if kind == "approval.decided":
        notes = f": {clip(str(p['notes']), 50)}" if p.get("notes") else ""
        return f"{p.get('kind')} {p.get('decision')} by {p.get('actor')}{notes}"
    notice = notice_text(kind, p)
    if notice is not None:  # a refused key, an overrun: said as everywhere else
        return notice
    if kind == "budget.exceeded":
        return f"spent {usd(p.get('spent_usd'))} of {usd(p.get('ceiling_usd'))}, needs " + usd(
            p.get("needed_usd")
        )
    if kind == "draft.ready":
        return f"v{p.get('version')} {clip(str(p.get('title', '')), 60)}"
    if kind == "quality.judged":
        return f"{p.get('passed', 0)} passed, {p.get('failed', 0)} failed"
    if kind == "build.started":
        return f"{len(p.get('waves') or [])} waves"
    if kind == "model.turn":
        asks = ", ".join(str(c.get("name")) for c in p.get("tool_calls") or [])
        said = f" · asks {asks}" if asks else " · answered"
        return f"turn {p.get('turn')} · {usd(p.get('cost_usd'))} {p.get('model', '')}{said}"
    if kind == "model.turn.sent":
        return f"turn {p.get('turn')} · asked, awaiting the answer"
    if kind == "model.turn.lost":
        return f"turn {p.get('turn')} · no answer: {clip(for_tui(str(p.get('note', ''))), 70)}"
    if kind == "tool.started":
        return f"{p.get('tool')} · running (turn {p.get('turn')})"
    if kind == "tool.called":
        return f"{p.get('tool')} {clip(str(p.get('arguments', '')), 50)} ({_tool_outcome(p)})"
    return clip(", ".join(f"{k}={v}" for k, v in p.items()), 80)


def event_line(event: dict[str, Any]) -> Text:
    """``#12 21:08:46 module.started prior_art_search  attempt 1 · execution`` (UTC time)."""
    when = parse_time(event.get("ts"))
    kind = str(event.get("type", ""))
    text = Text(f"#{event.get('seq', '?'):<4} ", style="dim")
    text.append(when.strftime("%H:%M:%S") if when else "--:--:--", style="dim")
    text.append(" ")
    style = _TYPE_STYLE.get(kind.split(".")[0], "")
    if kind == "task.transition":
        style = STATUS_STYLE.get(str((event.get("payload") or {}).get("to")), style)
    text.append(kind, style=style)
    if event.get("module_id"):
        text.append(f" {event['module_id']}", style="cyan")
    text.append(f"  {summary(event)}")
    return text


class EventLog(Vertical):
    """A filter box over a log that follows new events unless following is turned off. Lines
    are drawn while the log is on screen; events that arrive while it is hidden (another tab)
    are drawn when it shows."""

    DEFAULT_CSS = """
    EventLog { height: 1fr; }
    EventLog > #event-filter { margin: 0 0 0 0; }
    EventLog > RichLog { height: 1fr; background: $surface; }
    """

    def __init__(self, *, id: str | None = None, max_lines: int = 20_000) -> None:
        super().__init__(id=id)
        self._max_lines = max_lines
        self._events: list[dict[str, Any]] = []
        self._needle = ""
        self._written = 0
        """How many of ``_events`` the log has drawn."""
        self._shown = False
        self.following = True

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: type, module or text (/)", id="event-filter", compact=True)
        yield RichLog(id="event-lines", max_lines=self._max_lines, wrap=False, auto_scroll=True)

    def _matches(self, line: Text) -> bool:
        return not self._needle or self._needle in line.plain.casefold()

    def add(self, events: Iterable[dict[str, Any]]) -> None:
        self._events.extend(events)
        if self._shown:
            self._catch_up()

    def _catch_up(self) -> None:
        self._write(self._events[self._written :])
        self._written = len(self._events)

    def on_show(self) -> None:
        self._shown = True
        self._catch_up()

    def on_hide(self) -> None:
        self._shown = False

    def _write(self, events: list[dict[str, Any]]) -> None:
        """One write per batch: the log renders a block of lines far faster than each alone."""
        lines = [line for line in map(event_line, events) if self._matches(line)]
        if lines:
            block = Text("\n").join(lines)
            self.query_one(RichLog).write(block, scroll_end=self.following)

    def on_input_changed(self, message: Input.Changed) -> None:
        message.stop()
        self._needle = message.value.strip().casefold()
        self.query_one(RichLog).clear()
        self._written = 0
        if self._shown:
            self._catch_up()

    def set_following(self, following: bool) -> None:
        self.following = following
        log = self.query_one(RichLog)
        log.auto_scroll = following
        if following:
            log.scroll_end(animate=False)

    def focus_filter(self) -> None:
        self.query_one("#event-filter", Input).focus()

    @property
    def filtering(self) -> bool:
        """The filter box has focus (Esc leaves it, rather than the screen)."""
        return self.screen.focused is self.query_one("#event-filter", Input)

    def leave_filter(self) -> None:
        """Back to the log, the filter kept."""
        self.focus_log()

    def focus_log(self) -> None:
        self.query_one(RichLog).focus()
