"""A module's output (or the whole draft / deliverable) as Markdown."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from agentfirm.errors import AgentfirmError, NotFound

from ..context import Context
from ..source import DELIVERABLE, module_output
from ..widgets.markdown import MarkdownText

NO_OUTPUT = (
    "_No output to show yet._\n\nA module's output appears here once the draft that "
    "includes it is stitched."
)


class OutputScreen(Screen[None]):
    HELP_TITLE = "an output"
    HELP = (
        "A module's output, or the whole draft or deliverable, as Markdown. Arrows, PgUp/PgDn "
        "scroll; **r** reads it again; **Esc** goes back to the task."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, ctx: Context, task_id: str, module_id: str) -> None:
        super().__init__()
        self.ctx = ctx
        self.task_id = task_id
        self.module_id = module_id
        self.loaded = False

    def compose(self) -> ComposeResult:
        what = "draft / deliverable" if self.module_id == DELIVERABLE else self.module_id
        yield Static(f"agentfirm · {self.task_id} · output of {what}", id="title", markup=False)
        with VerticalScroll():
            yield MarkdownText("_Loading…_", id="output")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()
        self.load()

    @work(exclusive=True, group="output")
    async def load(self) -> None:
        try:
            text = await self._markdown()
        except AgentfirmError as err:
            text = f"**Could not load the output:** {err}"
        self.query_one("#output", MarkdownText).show(text or NO_OUTPUT)
        self.loaded = True

    async def _markdown(self) -> str | None:
        """A module's own latest output from the daemon; the draft's section of it when the
        daemon has none (not run yet, or a daemon without the endpoint). The draft itself is the
        deliverable file or the latest draft, appendix included."""
        if self.module_id != DELIVERABLE:
            try:
                output = await self.ctx.source.artifact(self.task_id, self.module_id)
            except NotFound:
                pass
            else:
                markdown = output.get("markdown")
                if isinstance(markdown, str) and markdown.strip():
                    return markdown
        return await module_output(self.ctx.source, self.task_id, self.module_id)

    def action_reload(self) -> None:
        self.load()
