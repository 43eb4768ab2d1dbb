"""One task, live: the wave DAG, the cost panel and the event log, with the approval prompts
opening as the task asks; under the header, where its work is (a Colab link to copy, the
deliverable to open in ``$EDITOR`` or a pager, the task repo). Events are buffered as they
stream in and applied in batches on a short timer, so a burst costs one repaint per tick, not one
per event."""

from __future__ import annotations

import asyncio
import os
import shlex
import subprocess
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from agentfirm.api.follow import Link, follow
from agentfirm.errors import AgentfirmError

from ..context import Context
from ..fmt import clip, spend, status_text
from ..modals import ConfirmModal
from ..model import TaskModel
from ..source import DELIVERABLE
from ..widgets.costs import CostPanel
from ..widgets.dag import ModuleCard, WaveDag, dependency_line
from ..widgets.events import EventLog
from ..widgets.where import where_lines
from ..wording import for_tui
from .prompts import Prompts

FLUSH_S = 0.05
_TABS = Binding.Group("Tabs")
"""One footer entry for the three tabs: with every action shown, 80 columns are tight."""
_REFETCH = frozenset(
    {"task.transition", "build.started", "approval.requested", "approval.decided", "draft.ready"}
)
HELP = """\
One task as it runs. The header says its status, spend against budget and whether the view is
live; under it, where its work is: a Colab link to copy (**y**), the deliverable (**v** opens it
in `$EDITOR`, else `$PAGER`, else `less`) and the task repo.

- **w**, **c**, **e** jump to the Waves, Costs and Events panes.
- In Waves, arrows (or tab) move between module cards; a card shows its state, tier and model,
  spent (and reserved while it runs), and elapsed time. **o** (or Enter) shows its output;
  **t** its transcript, live: every model turn and tool call with its result.
- **d** shows the whole draft or deliverable; **a** answers the question the task waits on.
- In Events, **/** filters the log and **Esc** leaves the filter; **f** stops following to
  scroll.
- **x** cancels the task; **Esc** goes back to the list.
"""


def viewer(path: str, env: dict[str, str]) -> list[str]:
    """The command that opens ``path``: ``$EDITOR``, else ``$PAGER``, else ``less``."""
    command = env.get("EDITOR") or env.get("PAGER") or "less"
    return [*shlex.split(command), path]


_LINK = {
    "connecting": ("◌ connecting", "dim"),
    "live": ("● live", "green"),
    "reconnecting": ("◌ reconnecting…", "bold yellow"),
    "ended": ("■ ended", "dim"),
}


class TaskScreen(Screen[None]):
    HELP_TITLE = "a task"
    HELP = HELP
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Tasks", tooltip="Back to the task list"),
        Binding("a", "answer", "Answer", tooltip="Answer the question the task waits on"),
        Binding("w", "tab('waves')", "Waves", group=_TABS),
        Binding("c", "tab('costs')", "Costs", group=_TABS),
        Binding("e", "tab('events')", "Events", group=_TABS),
        Binding("o", "output", "Output", tooltip="The focused module's output"),
        Binding("d", "draft", "Draft", tooltip="The whole draft or deliverable"),
        Binding("f", "follow", "Follow", tooltip="Follow new events, or stop to scroll"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("x", "cancel_task", "Cancel", tooltip="Cancel the task: its work stops for good"),
        Binding("v", "view_deliverable", "Open", tooltip="The deliverable in $EDITOR or a pager"),
        Binding("y", "copy_link", "Copy link", tooltip="Copy the Colab launch link"),
        Binding("enter", "output", "Output", show=False),
        Binding(
            "t",
            "transcript",
            "Transcript",
            show=False,
            tooltip="The focused module's turns and tool calls, live",
        ),
    ]

    def __init__(self, ctx: Context, task_id: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.task_id = task_id
        self.model = TaskModel(task_id)
        self.link: Link = "connecting"
        self.buffer: list[dict[str, Any]] = []
        self.prompts = Prompts(self, ctx, self._decision_sent)
        self.has_draft = False
        self.frame: int | None = 0 if ctx.animate else None
        self._dirty: set[str] = set()
        self._refreshing = False
        self._flush_due = False
        self._costs_stale = False
        self._binding_state: tuple[object, ...] = ()
        self._where = ""

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static(id="head")
        yield Static(id="where")
        yield Static(id="ask")
        with TabbedContent(id="tabs", initial="waves"):
            with TabPane("Waves", id="waves"):
                yield WaveDag(id="dag")
                yield Static(id="deps")
            with TabPane("Costs", id="costs"):
                yield CostPanel(id="cost-panel")
            with TabPane("Events", id="events"):
                yield EventLog(id="event-log")
        yield Footer()

    async def on_mount(self) -> None:
        self.set_interval(0.125 if self.ctx.animate else 1.0, self.tick)
        await self.repaint()
        self.start()

    @work(group="start", exclusive=True)
    async def start(self) -> None:
        self._dirty |= {"detail", "approvals", "costs"}
        await self.refetch()
        self.follow_events()

    @work(group="follow", exclusive=True)
    async def follow_events(self) -> None:
        try:
            async for event in follow(
                self.ctx.source, self.task_id, after_seq=self.model.last_seq, on_link=self.set_link
            ):
                self.buffer.append(event)
                self.kick()
        except AgentfirmError as err:
            self.notify(for_tui(str(err)), title="Event stream", severity="error", markup=False)

    def set_link(self, link: Link) -> None:
        if link != self.link:
            self.link = link
            if link == "live" and self.model.last_seq:
                # Back after a break: what changed meanwhile is fetched again, not guessed.
                self._dirty |= {"detail", "approvals", "costs"}
                self.kick()
            self._paint_head()

    # ------------------------------------------------------------------ live updates
    def kick(self, delay: float = FLUSH_S) -> None:
        """Flush within ``delay`` (at least ``FLUSH_S``: Textual's timers need a positive
        delay): on demand, so an idle view costs no CPU."""
        if not self._flush_due:
            self._flush_due = True
            self.set_timer(max(delay, FLUSH_S), self.flush)

    async def flush(self) -> None:
        """Apply the events buffered since the last flush, then repaint once."""
        self._flush_due = False
        if self.buffer:
            batch, self.buffer = self.buffer, []
            applied = [event for event in batch if self.model.apply(event)]
            kinds = {str(event.get("type")) for event in applied}
            if kinds & _REFETCH:
                self._dirty |= {"detail", "approvals"}
            if "cost.updated" in kinds:
                self._dirty.add("costs")
            if "draft.ready" in kinds:
                self.has_draft = True
            for event in applied:  # the daemon stopped driving it: why, and how to fix it
                error = (event.get("payload") or {}).get("error")
                if event.get("type") == "task.result" and error:
                    self.notify(
                        for_tui(str(error)), title="Stopped", severity="error", markup=False
                    )
            self.prompts.decided_elsewhere(applied)
            self.query_one(EventLog).add(applied)
            await self.repaint()
        if self._dirty and not self._refreshing:
            self.refetch_later()

    @work(group="refetch")
    async def refetch_later(self) -> None:
        await self.refetch()

    async def refetch(self) -> None:
        """Fetch what events said changed: the task, its approvals, its costs."""
        if self._refreshing:
            return
        self._refreshing = True
        try:
            while self._dirty:
                as_of = self.model.last_seq
                dirty, self._dirty = self._dirty, set()
                try:
                    if "approvals" in dirty:  # first: a question opens its prompt sooner
                        self._on_approvals(await self.ctx.source.approvals(self.task_id))
                    if "detail" in dirty:
                        detail = await self.ctx.source.task(self.task_id)
                        self.model.load_detail(detail, as_of_seq=as_of)
                    if "costs" in dirty and self._tab() != "costs" and self.model.last_seq:
                        self._costs_stale = True  # fetched when the tab shows
                    elif "costs" in dirty:
                        costs = await self.ctx.source.costs(self.task_id)
                        self.model.load_costs(costs)
                        self.query_one(CostPanel).show_costs(costs)
                        self._costs_stale = False
                except AgentfirmError:
                    self._dirty |= dirty  # the daemon is away: fetched again once it is back
                    self.kick(1.0)
                    return
                await self.repaint()
                if self._dirty and "approvals" not in self._dirty:
                    # Under a burst, refetch a few times a second; a new question, at once.
                    await asyncio.sleep(0.25)
        finally:
            self._refreshing = False

    def _on_approvals(self, rows: list[dict[str, Any]]) -> None:
        plans = [a for a in rows if a.get("kind") == "plan"]
        if plans:
            self.model.load_plan(plans[-1].get("payload") or {})
        if any((a.get("payload") or {}).get("draft_markdown") for a in rows):
            self.has_draft = True
        self.prompts.update(rows)
        self._bindings_may_change()

    def _decision_sent(self) -> None:
        self._dirty.add("approvals")
        self.kick()
        self._paint_head()

    async def tick(self) -> None:
        """Animate running cards and advance their elapsed time."""
        if self.frame is not None:
            self.frame += 1
        if self.model.running() and self._tab() == "waves":
            await self.query_one(WaveDag).sync(self.model, self.ctx.clock(), self.frame)

    async def repaint(self) -> None:
        """The header, and the tab on screen: a hidden tab is drawn when it shows."""
        self._paint_head()
        tab = self._tab()
        if tab == "waves":
            dag = self.query_one(WaveDag)
            await dag.sync(self.model, self.ctx.clock(), self.frame)
            deps = dependency_line(self.model, dag.focused_module)
            self.query_one("#deps", Static).update(deps, layout=False)
        elif tab == "costs":
            m = self.model
            self.query_one(CostPanel).show_gauge(m.spent_usd, m.budget_usd, simulated=m.simulated)
        self._bindings_may_change()

    def _bindings_may_change(self) -> None:
        """Redraw the footer only when what ``check_action`` decides has changed: a footer
        redraw rebuilds every key widget, far too costly for each batch of events."""
        tab = self._tab()
        state = (
            bool(self.prompts.pending),
            tab,
            bool(self.model.modules),
            self.has_draft,
            self.model.final,
            bool(self.model.deliverable_path),
            bool((self.model.launch or {}).get("url")),
        )
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    def _paint_head(self) -> None:
        m = self.model
        width = max(20, self.size.width - 2)
        top = Text(f"{m.task_id}", style="bold", no_wrap=True, overflow="ellipsis")
        top.append(f" · {m.persona or 'unclassified'} · ")
        top.append_text(status_text(m.status))
        label, style = _LINK[self.link]
        top.append(f" · {label}", style=style)
        below = spend(m.spent_usd, m.budget_usd, 10)
        if m.simulated:
            below.append(" ≈ simulated", style="italic magenta")
        below.append(f"  {clip(m.request, max(10, width - below.cell_len - 2))}", style="dim")
        top.append("\n")
        top.append_text(below)
        top.truncate(width * 2)
        self.query_one("#head", Static).update(top, layout=False)  # two lines, always
        where = self.query_one("#where", Static)
        lines = where_lines(self.model)
        if lines.plain != self._where:
            self._where = lines.plain
            where.update(lines)
            where.set_class(bool(lines.plain), "-shown")
        ask = self.query_one("#ask", Static)
        banner = self.prompts.banner()
        ask.update(Text(banner, style="bold"))
        ask.set_class(bool(banner), "-shown")

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tab = self._tab() if self.is_mounted else "waves"
        if action == "answer":
            return bool(self.prompts.pending)
        if action in ("follow", "filter"):
            return tab == "events"
        if action in ("output", "transcript"):
            return bool(self.model.modules) and tab == "waves"
        if action == "draft":  # not beside follow and filter: 80 columns hold only so many
            return self.has_draft and tab != "events"
        if action == "cancel_task":
            return not self.model.final
        if action == "view_deliverable":
            return bool(self.model.deliverable_path)
        if action == "copy_link":
            return bool((self.model.launch or {}).get("url"))
        return True

    def action_back(self) -> None:
        from .task_list import TaskListScreen

        log = self.query_one(EventLog)
        if log.filtering:  # Esc leaves the filter box first
            log.leave_filter()
            return
        if any(isinstance(s, TaskListScreen) for s in self.app.screen_stack):
            self.app.pop_screen()
        else:  # opened straight on this task
            self.app.switch_screen(TaskListScreen(self.ctx))

    async def action_tab(self, tab: str) -> None:
        """Show pane ``tab`` and focus in it: focus left in another pane (given back as the
        palette closes) would switch the tabs straight back."""
        self.query_one(TabbedContent).active = tab
        await self.repaint()
        if tab == "waves":
            card = self.query_one(WaveDag).first_card()
            if card is not None:
                card.focus()
        elif tab == "costs":
            self.query_one(CostPanel).focus()
        else:
            self.query_one(EventLog).focus_log()

    @on(TabbedContent.TabActivated)
    async def _tab_changed(self) -> None:
        if self._tab() == "costs" and self._costs_stale:
            self._dirty.add("costs")
            self.kick()
        await self.repaint()

    def _tab(self) -> str:
        return self.query_one(TabbedContent).active

    def action_answer(self) -> None:
        self.prompts.reopen()

    def action_output(self) -> None:
        from .output import OutputScreen

        module = self.query_one(WaveDag).focused_module
        self.app.push_screen(OutputScreen(self.ctx, self.task_id, module or DELIVERABLE))

    def action_transcript(self) -> None:
        from .transcript import TranscriptScreen

        module = self.query_one(WaveDag).focused_module
        if module is None:
            self.notify("focus a module card first (arrows or tab)")
            return
        self.app.push_screen(TranscriptScreen(self.model, module))

    def action_draft(self) -> None:
        from .output import OutputScreen

        self.app.push_screen(OutputScreen(self.ctx, self.task_id, DELIVERABLE))

    def action_follow(self) -> None:
        log = self.query_one(EventLog)
        log.set_following(not log.following)
        self.notify("following new events" if log.following else "not following: scroll freely")

    def action_filter(self) -> None:
        self.query_one(EventLog).focus_filter()

    def action_copy_link(self) -> None:
        url = (self.model.launch or {}).get("url")
        if url:
            self.app.copy_to_clipboard(str(url))
            self.notify(f"copied: {url}", title="Launch link", markup=False)

    def action_view_deliverable(self) -> None:
        """Hand the terminal to the user's editor or pager on the deliverable, then come back."""
        path = self.model.deliverable_path
        if not path:
            return
        argv = viewer(path, dict(os.environ))
        try:
            with self.app.suspend():
                subprocess.run(argv, check=False)
        except SuspendNotSupported:
            self.notify(f"this terminal cannot be handed over: open {path}", markup=False)
        except OSError as err:
            self.notify(f"{argv[0]}: {err.strerror}; open {path}", severity="error", markup=False)

    def action_cancel_task(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.cancel_task()

        self.app.push_screen(
            ConfirmModal(f"Cancel task {self.task_id}? Its work stops for good."), confirmed
        )

    @work(group="cancel")
    async def cancel_task(self) -> None:
        try:
            await self.ctx.source.cancel(
                self.task_id, reason="cancelled from the TUI", actor=self.ctx.actor
            )
        except AgentfirmError as err:
            self.notify(
                for_tui(str(err)), title="Not cancelled", severity="error", timeout=10, markup=False
            )

    def on_module_card_focused(self, message: ModuleCard.Focused) -> None:
        dag = self.query_one(WaveDag)
        dag.focused_module = message.module_id
        dag.highlight(self.model)
        deps = dependency_line(self.model, message.module_id)
        self.query_one("#deps", Static).update(deps, layout=False)

    def on_screen_resume(self) -> None:
        self.prompts.ask_next()

    @property
    def settled(self) -> bool:
        """Connected, every received event applied and every fetch done (tests wait on it)."""
        return (
            self.link in ("live", "ended")
            and not self.buffer
            and not self._dirty
            and not self._refreshing
        )
