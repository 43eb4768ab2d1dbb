"""One module's transcript, live: each model turn (what was sent that turn, what came back, its
cost), each turn left without an answer (and why) and each tool call with its arguments and
result, as the task's events carry them (already redacted). The task view keeps receiving events
underneath; this screen redraws when they grow."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ..fmt import clip
from ..model import TaskModel

TURN = "model.turn"
TOOL = "tool.called"
LOST = "model.turn.lost"
"""A turn asked and never answered (refused, failed, cut off by a crash): asked again."""
WIDTH = 300
"""Characters of a message, an answer or a tool result shown, on one line."""
EMPTY = (
    "No model turns or tool calls yet. A module with tools journals each turn and call here as "
    "it runs; one without tools makes a single call, shown once it is done."
)


def _flat(text: Any, width: int = WIDTH) -> str:
    return clip(str(text or ""), width)


def _how(payload: dict[str, Any]) -> tuple[str, str]:
    if payload.get("simulated"):
        return "simulated: not run", "magenta"
    if payload.get("denied"):
        return "denied", "bold red"
    if payload.get("interrupted"):
        return "interrupted by a crash: not run again", "bold red"
    if payload.get("malformed"):
        return "invalid arguments", "yellow"
    if payload.get("is_error"):
        return "error", "red"
    return "ran", "green"


def transcript_text(events: Iterable[dict[str, Any]], module_id: str) -> Text:
    """``module_id``'s turns and tool calls among ``events``, in order, for people."""
    text = Text()
    for event in events:
        kind = event.get("type")
        if kind not in (TURN, TOOL, LOST) or event.get("module_id") != module_id:
            continue
        p: dict[str, Any] = event.get("payload") or {}
        if kind == LOST:
            text.append(f"◇ turn {p.get('turn')}", style="bold yellow")
            text.append(f"  no answer: {_flat(p.get('note'))}\n")
            continue
        if kind == TOOL:
            how, style = _how(p)
            text.append(f"  ⚙ {p.get('tool')} ", style="bold cyan")
            text.append(_flat(p.get("arguments"), 120))
            text.append(f"  ({how})\n", style=style)
            text.append(f"      {_flat(p.get('content'))}\n", style="dim")
            continue
        text.append(f"◆ turn {p.get('turn')}", style="bold green")
        text.append(f"  {p.get('provider')}:{p.get('model')}  ${float(p.get('cost_usd') or 0):.4f}")
        if p.get("simulated"):
            text.append("  (simulated)", style="magenta")
        if p.get("final"):
            text.append("  last turn: tools withdrawn", style="yellow")
        text.append("\n")
        for message in p.get("sent") or ():
            text.append(f"    → {message.get('role')}: ", style="bold")
            text.append(f"{_flat(message.get('content'))}\n")
        calls = p.get("tool_calls") or ()
        for call in calls:
            text.append("    ← asks ", style="bold")
            text.append(f"{call.get('name')} {_flat(call.get('raw_arguments'), 120)}\n")
        if not calls:
            data = p.get("data")
            said = json.dumps(data, ensure_ascii=False) if data is not None else p.get("text")
            text.append("    ← ", style="bold")
            text.append(f"{_flat(said)}\n")
    return text


class TranscriptScreen(Screen[None]):
    HELP_TITLE = "a transcript"
    HELP = (
        "A module's transcript as it runs: each model turn (what was sent, what came back, its "
        "cost) and each tool call with its arguments and result — denied, simulated or run. "
        "Arrows, PgUp/PgDn scroll; **Esc** goes back to the task. The whole of it, unclipped: "
        "`agentfirm tasks transcript TASK --module MODULE`."
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def __init__(self, model: TaskModel, module_id: str) -> None:
        super().__init__()
        self.model = model
        self.module_id = module_id
        self.shown = -1
        """How many of the task's events the drawing reflects."""

    def compose(self) -> ComposeResult:
        title = f"agentfirm · {self.model.task_id} · transcript of {self.module_id}"
        yield Static(title, id="title", markup=False)
        with VerticalScroll():
            yield Static(id="transcript")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self.redraw()
        self.set_interval(0.5, self.redraw)

    def redraw(self) -> None:
        if len(self.model.events) == self.shown:
            return
        self.shown = len(self.model.events)
        text = transcript_text(self.model.events, self.module_id)
        self.query_one("#transcript", Static).update(text if text.plain else Text(EMPTY))
