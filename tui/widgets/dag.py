"""The wave DAG: one column per dependency level, one card per module (state, attempts,
elapsed, tier, model, spent and — while it runs, when the daemon tells — reserved). Running
cards spin; the focused card's dependencies and dependents are highlighted and listed under the
graph."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import HorizontalScroll, Vertical
from textual.message import Message
from textual.widgets import Label, Static

from ..fmt import MODULE_ICON, MODULE_STYLE, SPINNER, TIER_SHORT, clip, elapsed, usd
from ..model import ModuleView, TaskModel
from ..wording import for_tui

_STATES = ("pending", "running", "done", "failed", "skipped")
_INNER = 20
"""A card's text width: its 24 columns less the border and padding (``ModuleCard`` CSS)."""
EMPTY = "No modules yet: the plan appears here once it is made."


class ModuleCard(Static, can_focus=True):
    """One module. Focus it (click, tab, arrows) to see what it needs and what it feeds."""

    DEFAULT_CSS = """
    ModuleCard {
        width: 24; height: 5; padding: 0 1; margin: 0 0 1 0;
        border: round $panel-lighten-2; border-title-color: $text;
    }
    ModuleCard.-running { border: round $warning; }
    ModuleCard.-done { border: round $success-darken-1; }
    ModuleCard.-failed { border: heavy $error; }
    ModuleCard.-skipped { border: round $panel; color: $text-muted; }
    ModuleCard.-pending { color: $text-muted; }
    ModuleCard.-dep { border: double $accent; }
    ModuleCard.-dependent { border: dashed $accent; }
    ModuleCard:focus { border: thick $accent; background: $boost; }
    """

    class Focused(Message):
        def __init__(self, module_id: str) -> None:
            super().__init__()
            self.module_id = module_id

    def __init__(self, module: ModuleView) -> None:
        super().__init__(id=f"card-{module.id}")
        self.module_id = module.id
        self._shown: tuple[object, ...] = ()

    def show(self, module: ModuleView, now: datetime, frame: int | None) -> None:
        """Repaint from ``module``; ``frame`` (None: no animation) picks the spinner glyph."""
        icon = MODULE_ICON.get(module.status, "?")
        if module.status == "running" and frame is not None:
            icon = SPINNER[frame % len(SPINNER)]
        took = elapsed(module.started_at, module.finished_at, now)
        key = (
            module.status,
            icon,
            module.tier,
            module.provider,
            module.model,
            module.reserved_usd,
            module.cost_usd,
            took,
            module.attempts,
            module.title,
        )
        if key == self._shown:
            return
        self._shown = key
        for state in _STATES:
            self.set_class(module.status == state, f"-{state}")
        self.border_title = clip(module.id, 20)
        style = MODULE_STYLE.get(module.status, "")
        text = Text(f"{icon} {module.status}", style=style)
        if module.attempts > 1:
            text.append(f" try {module.attempts}", style="yellow")
        if took:
            text.append(f" ⏱ {took}", style="dim")
        text.append("\n")
        tier = TIER_SHORT.get(module.tier, module.tier)
        text.append(tier, style="cyan")
        model = clip(module.model or module.provider or "—", max(4, _INNER - len(tier) - 3))
        text.append(f" · {model}\n", style="dim")
        text.append(usd(module.cost_usd) if module.cost_usd or module.status == "done" else "—")
        if module.reserved_usd is not None and module.status == "running":
            text.append(f" held {usd(module.reserved_usd)}", style="yellow")
        self.update(text, layout=False)  # a card's size is fixed: no reflow

    def on_focus(self) -> None:
        self.post_message(self.Focused(self.module_id))


class WaveDag(HorizontalScroll):
    """Columns of cards; ``sync`` repaints from the model and rebuilds only when modules appear
    or move between waves."""

    DEFAULT_CSS = """
    WaveDag { height: 1fr; }
    WaveDag > .wave { width: 26; height: auto; padding: 0 1 0 0; }
    WaveDag > .wave > .wave-title { color: $text-muted; text-style: bold; padding: 0 1; }
    WaveDag > #dag-empty { width: 1fr; color: $text-muted; padding: 1 2; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left", "move(-1, 0)", "Previous wave", show=False),
        Binding("right", "move(1, 0)", "Next wave", show=False),
        Binding("up", "move(0, -1)", "Card above", show=False),
        Binding("down", "move(0, 1)", "Card below", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._model: TaskModel | None = None
        self._structure = -1
        self._layout: list[list[str]] | None = None
        self._cards: dict[str, ModuleCard] = {}
        self.focused_module: str | None = None

    def compose(self) -> ComposeResult:
        yield Label(EMPTY, id="dag-empty")

    async def sync(self, model: TaskModel, now: datetime, frame: int | None) -> None:
        self._model = model
        if model.structure_seq != self._structure:
            self._structure = model.structure_seq
            layout = [[m.id for m in level] for level in model.waves()]
            if layout != self._layout:
                self._layout = layout
                await self._rebuild(model)
        for module_id, card in self._cards.items():
            module = model.modules.get(module_id)
            if module is not None:
                card.show(module, now, frame)
        self.highlight(model)

    async def _rebuild(self, model: TaskModel) -> None:
        refocus = self.focused_module
        await self.remove_children()
        self._cards = {}
        levels = model.waves()
        if not levels:
            await self.mount(Label(EMPTY, id="dag-empty"))
            return
        columns = []
        for n, level in enumerate(levels, start=1):
            cards = [ModuleCard(module) for module in level]
            self._cards.update((card.module_id, card) for card in cards)
            title = Label(f"Wave {n}", classes="wave-title")
            columns.append(Vertical(title, *cards, classes="wave"))
        await self.mount(*columns)
        if refocus in self._cards:
            self._cards[refocus].focus()

    def first_card(self) -> ModuleCard | None:
        return next(iter(self._cards.values()), None)

    def highlight(self, model: TaskModel) -> None:
        focused = self.focused_module
        module = model.modules.get(focused) if focused else None
        needs = set(module.depends_on) if module else set()
        feeds = set(model.dependents(focused)) if focused else set()
        for module_id, card in self._cards.items():
            card.set_class(module_id in needs, "-dep")
            card.set_class(module_id in feeds, "-dependent")

    def action_move(self, dx: int, dy: int) -> None:
        if self._model is not None:
            self.move(self._model, dx, dy)

    def move(self, model: TaskModel, dx: int, dy: int) -> None:
        """Move focus between cards: ``dx`` across waves, ``dy`` within one."""
        levels = [[m.id for m in level] for level in model.waves()]
        if not levels:
            return
        where = next(
            (
                (x, y)
                for x, level in enumerate(levels)
                for y, m in enumerate(level)
                if m == self.focused_module
            ),
            None,
        )
        if where is None:
            target = levels[0][0]
        else:
            x = max(0, min(len(levels) - 1, where[0] + dx))
            y = max(0, min(len(levels[x]) - 1, where[1] + dy if dx == 0 else where[1]))
            target = levels[x][y]
        card = self._cards.get(target)
        if card is not None:
            card.focus()
            card.scroll_visible()


def dependency_line(model: TaskModel, module_id: str | None) -> Text:
    """``needs a, b · feeds c`` for the focused module (and its last error, if any)."""
    module = model.modules.get(module_id) if module_id else None
    if module is None:
        return Text("Focus a card (tab, arrows, click) to see its dependencies.", style="dim")
    text = Text(module.title or module.id, style="bold")
    text.append("  needs ", style="dim")
    text.append(", ".join(module.depends_on) or "nothing", style="cyan")
    text.append("  feeds ", style="dim")
    text.append(", ".join(model.dependents(module.id)) or "the draft", style="cyan")
    if module.model:
        text.append(f"  model {module.model}", style="dim")
    if module.error:
        text.append(f"  error: {clip(for_tui(module.error), 80)}", style="red")
    return text
