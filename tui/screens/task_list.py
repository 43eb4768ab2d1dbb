"""Every task: status, persona, spend against budget, age; filter by any of them."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from agentfirm.errors import AgentfirmError

from ..context import Context
from ..fmt import STATUS_STYLE, age, clip, spend

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


def status_cell(status: str, asking: str | None = None) -> Text:
    """The status, or what the task asks (``asking``: the kind of its pending question) when its
    status does not say it waits."""
    if asking is not None:
        return Text(ASKING_LABEL.get(asking, f"⏸ {asking}"), style=_WAITING_STYLE)
    return Text(STATUS_LABEL.get(status, status), style=STATUS_STYLE.get(status, ""))


def asking(row: dict[str, Any]) -> str | None:
    """What the task waits on, when its status does not say it waits."""
    waiting = row.get("waiting_on")  # absent from an older daemon's rows
    return str(waiting) if waiting and row.get("status") in QUIET_WAITS else None


class TaskListScreen(Screen[None]):
    DEFAULT_CSS = """
    TaskListScreen #title { height: 1; background: $panel; color: $text; padding: 0 1; }
    TaskListScreen #filter { margin: 0 0; }
    TaskListScreen DataTable { height: 1fr; }
    TaskListScreen #empty { color: $text-muted; padding: 1 2; height: auto; }
    TaskListScreen #error { color: $error; height: auto; padding: 0 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", tooltip="Open the task under the cursor", priority=True),
        Binding("n", "new", "New task"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("r", "refresh", "Refresh"),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self, ctx: Context, *, autoload: bool = True) -> None:
        super().__init__()
        self.ctx = ctx
        self.autoload = autoload
        self.rows: list[dict[str, Any]] = []
        self._needle = ""

    def compose(self) -> ComposeResult:
        yield Static("agentfirm · tasks", id="title")
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
            rows = await self.ctx.source.tasks()
        except AgentfirmError as err:
            self.query_one("#error", Static).update(Text(f"⚠ {err}"))
            return
        self.rows = rows
        self.query_one("#error", Static).update("")
        self.render_rows()

    def _visible(self) -> list[dict[str, Any]]:
        needle = self._needle
        if not needle:
            return self.rows
        fields = ("task_id", "status", "persona", "request")
        return [
            r for r in self.rows if any(needle in str(r.get(f) or "").casefold() for f in fields)
        ]

    def render_rows(self) -> None:
        table = self.query_one(DataTable)
        width = max(20, self.size.width - 15 - 16 - 22 - 6 - 12)
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
        if not self.rows:
            empty.update("No tasks yet. Press n to give the firm its first request.")
        elif not table.row_count:
            empty.update(Text(f"No task matches “{self._needle}”."))
        else:
            empty.update("")

    def on_input_changed(self, event: Input.Changed) -> None:
        self._needle = event.value.strip().casefold()
        self.render_rows()

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

    def action_refresh(self) -> None:
        self.load()

    def on_screen_resume(self) -> None:
        if self.autoload:
            self.load()
