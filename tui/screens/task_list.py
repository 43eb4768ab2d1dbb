"""Every task: status, persona, spend against budget, age. Tasks still at work come first; ``f``
shows all, the running or the failed ones; ``/`` filters by text and Esc leaves the filter."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from agentfirm.errors import AgentfirmError

from ..context import Context
from ..fmt import FINAL_STATUSES, STATUS_STYLE, age, clip, spend

STATUS_LABEL = {
    "awaiting_plan_approval": "⏸ plan approval",
    "awaiting_budget": "⏸ budget",
    "awaiting_review": "⏸ review",
    "clarifying": "⏸ clarifying",
    "handed_off": "handed off",
}
ASKING_LABEL = {"failure": "⏸ module failed"}
"""A question asked in a status that does not say the task waits (see ``QUIET_WAITS``)."""
QUIET_WAITS = frozenset({"executing"})
"""Statuses a task keeps while it waits for a human (on a failed module's question): only the
row's ``waiting_on`` (the kind of its pending approval) tells."""
_WAITING_STYLE = STATUS_STYLE["awaiting_review"]
FAILED = frozenset({"failed", "aborted"})
VIEWS: dict[str, str] = {
    "all": "all tasks",
    "running": "tasks at work",
    "failed": "failed or aborted",
}
"""What ``f`` cycles through: the key of each view and the words for it in the title."""
HELP = """\
Every task the daemon knows, those still at work first (running or waiting for you), then the
finished ones, newest first within each.

- **Enter** opens a task; **n** (or ctrl+n) writes a new one.
- **f** cycles the view: all tasks, those at work, those that failed or were aborted.
- **/** filters by status, persona, request or id as you type; **Esc** leaves the filter box
  (the filter stays), a second **Esc** clears it.
- A ⏸ in the status column means the task waits for you.
"""


def status_cell(status: str, asking: str | None = None) -> Text:
    """The status, or what the task asks (``asking``: the kind of its pending question) when its
    status does not say it waits."""
    if asking is not None:
        return Text(ASKING_LABEL.get(asking, f"⏸ {asking}"), style=_WAITING_STYLE)
    return Text(STATUS_LABEL.get(status, status), style=STATUS_STYLE.get(status, ""))


def in_view(row: dict[str, Any], view: str) -> bool:
    status = str(row.get("status"))
    if view == "running":
        return status not in FINAL_STATUSES
    if view == "failed":
        return status in FAILED
    return True


def at_work_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks not final before final ones, each group in the daemon's order (newest first)."""
    return sorted(rows, key=lambda r: str(r.get("status")) in FINAL_STATUSES)


def asking(row: dict[str, Any]) -> str | None:
    """What the task waits on, when its status does not say it waits."""
    waiting = row.get("waiting_on")  # absent from an older daemon's rows
    return str(waiting) if waiting and row.get("status") in QUIET_WAITS else None


class TaskListScreen(Screen[None]):
    HELP_TITLE = "tasks"
    HELP = HELP
    view: reactive[str] = reactive("all", init=False)
    """Which tasks show (a key of ``VIEWS``); ``f`` cycles it."""
    # Each action a letter and a control key: while the filter box has focus, letters are
    # typed into it, and the footer shows (and the keys run) the control-key twins.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="Open the task under the cursor", priority=True),
        Binding("n,ctrl+n", "new", "New task"),
        Binding("f,ctrl+f", "cycle_view", "View", tooltip="All tasks, those at work, the failed"),
        Binding("slash", "filter", "Filter", tooltip="Filter by text", key_display="/"),
        Binding("escape", "leave_filter", "Done", tooltip="Leave the filter box; again: clear it"),
        Binding("r,ctrl+r", "refresh", "Refresh", tooltip="Read the list now", show=False),
        Binding("q", "app.quit", "Quit"),
        # Priority, or the app's own (hidden) ctrl+q would take the key's place in the footer.
        Binding("ctrl+q", "app.quit", "Quit", priority=True),
    ]

    def __init__(self, ctx: Context, *, autoload: bool = True) -> None:
        super().__init__()
        self.ctx = ctx
        self.autoload = autoload
        self.rows: list[dict[str, Any]] = []
        self._needle = ""

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="title")
        yield Input(
            placeholder="filter: status, persona, request or id (/)", id="filter", compact=True
        )
        table: DataTable[Any] = DataTable(id="tasks", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="empty")
        yield Static("", id="error")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_column("Status", width=15, key="status")
        table.add_column("Persona", width=16, key="persona")
        table.add_column("Spend", width=22, key="spend")
        table.add_column("Age", width=6, key="age")
        table.add_column("Request", key="request")
        table.focus()
        if self.autoload:
            # After the first frame: the screen shows at once, the rows a moment later.
            self.call_after_refresh(self.start_loading)
        else:
            self.query_one("#empty", Static).update("Connecting to the agentfirm daemon…")

    def start_loading(self) -> None:
        """Read the tasks now and every ``refresh_s`` from now on."""
        self.load()
        if self.ctx.refresh_s > 0:
            self.set_interval(self.ctx.refresh_s, self.load)

    @work(exclusive=True, group="load")
    async def load(self) -> None:
        try:
            rows = await self.ctx.source.tasks(limit=200)
        except AgentfirmError as err:
            if self._showing():
                self.query_one("#error", Static).update(Text(f"⚠ {err}"))
            return
        if not self._showing():
            return
        self.rows = rows
        self.query_one("#error", Static).update("")
        self.render_rows()

    def _showing(self) -> bool:
        """Whether the list is still on show: as the app quits, its widgets are taken down
        before its readers are stopped, and an answer arriving then has nowhere to go."""
        return self.app.is_running and self.is_attached

    def _title(self) -> str:
        return f"agentfirm · {VIEWS[self.view]}"

    def _visible(self) -> list[dict[str, Any]]:
        needle = self._needle
        fields = ("task_id", "status", "persona", "request")
        return [
            r
            for r in at_work_first(self.rows)
            if in_view(r, self.view)
            and (not needle or any(needle in str(r.get(f) or "").casefold() for f in fields))
        ]

    def render_rows(self) -> None:
        table = self.query_one(DataTable)
        # The other columns and each column's two cells of padding: no sideways scrolling.
        width = max(8, self.size.width - 15 - 16 - 22 - 6 - 2 * 5 - 1)
        keep = (
            table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if (table.row_count)
            else None
        )
        table.clear()
        now = self.ctx.clock()
        for row in self._visible():
            table.add_row(
                status_cell(str(row.get("status")), asking(row)),
                Text(clip(str(row.get("persona") or "—"), 16)),
                spend(float(row.get("cost_usd") or 0), float(row.get("budget_usd") or 0), 8),
                Text(age(row.get("created_at"), now)),
                Text(clip(str(row.get("request") or ""), width)),
                key=str(row["task_id"]),
            )
        if keep is not None and keep in table.rows:
            table.move_cursor(row=table.get_row_index(keep))
        empty = self.query_one("#empty", Static)
        empty.display = not table.row_count
        if not self.rows:
            empty.update("No tasks yet. Press n to give the firm its first request.")
        elif not table.row_count and self._needle:
            empty.update(Text(f"No task matches “{self._needle}” among {VIEWS[self.view]}."))
        elif not table.row_count:
            empty.update(Text(f"No {VIEWS[self.view]}. Press f to see the others."))
        else:
            empty.update("")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._needle = event.value.strip().casefold()
        self.render_rows()
        self.refresh_bindings()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.query_one(DataTable).focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value:
            self.open_task(event.row_key.value)

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
            if key:
                self.open_task(key)

    def open_task(self, task_id: str) -> None:
        from .task_view import TaskScreen

        self.app.push_screen(TaskScreen(self.ctx, task_id))

    def action_new(self) -> None:
        from .new_task import NewTaskScreen

        self.app.push_screen(NewTaskScreen(self.ctx))

    def action_filter(self) -> None:
        self.query_one("#filter", Input).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "leave_filter":
            return self.is_mounted and (self._filtering() or bool(self._needle))
        if action == "filter":  # ``/`` is typed into the box while it has focus
            return not (self.is_mounted and self._filtering())
        return True

    def _filtering(self) -> bool:
        return self.focused is self.query_one("#filter", Input)

    def on_descendant_focus(self) -> None:
        self.refresh_bindings()  # Esc is offered only while the filter has focus or text

    def action_leave_filter(self) -> None:
        """Esc: out of the filter box, back to the rows (the filter stays); Esc on the rows
        clears the filter."""
        if self._filtering():
            self.query_one(DataTable).focus()
        else:
            self.query_one("#filter", Input).value = ""

    def action_cycle_view(self) -> None:
        names = list(VIEWS)
        self.view = names[(names.index(self.view) + 1) % len(names)]

    def watch_view(self) -> None:
        """A new view: its name in the title, its rows in the table."""
        self.query_one("#title", Static).update(self._title())
        self.render_rows()

    def action_refresh(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        if self.autoload:
            self.load()
