"""The event log: one line per event, filterable, following live (toggle to stop and scroll)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, RichLog

from ..fmt import STATUS_STYLE, clip, parse_time, usd

_TYPE_STYLE = {
    "task": "magenta",
    "module": "cyan",
    "cost": "green",
    "approval": "bold magenta",
    "budget": "bold red",
    "build": "blue",
    "draft": "bold blue",
    "quality": "blue",
}


def summary(event: dict[str, Any]) -> str:
    """What happened, in a few words, from the event's payload."""
    kind = str(event.get("type", ""))
    p: dict[str, Any] = event.get("payload") or {}
    if kind == "task.transition":
        reason = f" ({clip(str(p['reason']), 60)})" if p.get("reason") else ""
        return f"{p.get('from')} → {p.get('to')}{reason}"
    if kind == "cost.updated":
        return f"{usd(p.get('cost_usd'))} {p.get('tier', '')} {p.get('model', '')} · spent " + usd(
            p.get("spent_usd")
        )
    if kind == "module.started":
        return f"attempt {p.get('attempt', 1)} · {p.get('tier', '')}"
    if kind == "module.completed":
        return f"{usd(p.get('cost_usd'))} · {p.get('provider', '')} {p.get('model', '')}"
    if kind in ("module.failed", "module.retrying"):
        return clip(str(p.get("error", "")), 80)
    if kind == "approval.requested":
        return f"{p.get('kind')}: {clip(str(p.get('question', '')), 80)}"
    if kind == "approval.decided":
        notes = f": {clip(str(p['notes']), 50)}" if p.get("notes") else ""
        return f"{p.get('kind')} {p.get('decision')} by {p.get('actor')}{notes}"
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
