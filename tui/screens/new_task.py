"""A new task: the request, and optionally a persona, a budget, attachments, the runner and the
offline provider. Fields this daemon does not take are shown disabled, never sent."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static, TextArea

from agentfirm.api.models import fit_submitter
from agentfirm.errors import AgentfirmError

from ..context import Context
from ..modals.base import parse_usd
from ..source import Submission
from ..widgets.marks import MarkedCheckbox
from ..wording import for_tui

AUTO = "__auto__"
HELP = """\
Write what the firm should produce; everything else is optional. **Tab** moves between fields.

- **Persona**: leave it to classify the request, or pick one.
- **Budget**: the ceiling in USD (the default shows in the box); the plan comes back for your
  approval with an estimate before anything is spent beyond planning.
- **Attach file**: a path, **Enter** adds it; ctrl+r drops the last one.
- **Runner**: where the modules run (inproc here, a notebook, or Colab).
- **Offline provider** (space ticks it, ✓ when on): simulated output and costs, no keys needed.

**ctrl+s** submits; **Esc** cancels.
"""


def resolve_attachment(raw: str, cwd: Path) -> Path:
    """An existing file's absolute path; ``ValueError`` naming it otherwise."""
    path = Path(raw.strip()).expanduser()
    path = path if path.is_absolute() else cwd / path
    if not path.is_file():
        raise ValueError(f"attachment {raw.strip()!r}: no such file ({path})")
    return path.resolve()


class NewTaskScreen(Screen[None]):
    HELP_TITLE = "a new task"
    HELP = HELP
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+s", "submit", "Submit", tooltip="Create the task; its plan comes back to you"
        ),
        Binding("ctrl+r", "drop_attachment", "Drop attachment", tooltip="Remove the last file"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, ctx: Context, *, cwd: Path | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.cwd = cwd or Path.cwd()
        self.attachments: list[Path] = []
        self.fields: frozenset[str] = frozenset()
        self.submitting = False
        self.loaded = False
        """The daemon's personas and fields are in the form, or it failed (tests wait on it)."""

    def compose(self) -> ComposeResult:
        yield Static("agentfirm · new task", id="title")
        with Grid(id="form"):
            yield Label("Request")
            yield TextArea(id="request", soft_wrap=True, compact=True)
            yield Label("Persona")
            yield Select[str](
                [("classify automatically", AUTO)],
                value=AUTO,
                allow_blank=False,
                id="persona",
                compact=True,
            )
            yield Label("Budget, USD")
            yield Input(
                placeholder=f"default {self.ctx.default_budget_usd:g}", id="budget", compact=True
            )
            yield Label("Attach file")
            yield Input(placeholder="path, Enter adds it", id="attach", compact=True)
            yield Label("")
            yield Static("", id="attached")
            yield Label("Runner")
            yield Select[str](
                [(r, r) for r in self.ctx.runners],
                value=self.ctx.default_runner,
                allow_blank=False,
                id="runner",
                compact=True,
                disabled=True,
            )
            yield Label("")
            yield MarkedCheckbox(
                "offline provider (simulated output and costs)", id="offline", compact=True
            )
        yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#request", TextArea).focus()
        self._show_attachments()
        self.load_options()

    @work(exclusive=True, group="options")
    async def load_options(self) -> None:
        try:
            await self._load_options()
        finally:
            self.loaded = True

    async def _load_options(self) -> None:
        try:
            personas = await self.ctx.source.personas()
            self.fields = await self.ctx.source.submission_fields()
        except AgentfirmError as err:
            self.status(f"⚠ {err}", error=True)
            return
        options = [("classify automatically", AUTO)] + [
            (f"{p['name']} ({p['id']})", str(p["id"])) for p in personas
        ]
        self.query_one("#persona", Select).set_options(options)
        runner = self.query_one("#runner", Select)
        runner.disabled = "runner" not in self.fields
        runner.tooltip = None if not runner.disabled else "this daemon runs its configured runner"
        self._show_attachments()

    def status(self, message: str, *, error: bool = False) -> None:
        line = self.query_one("#status", Static)
        line.update(Text(for_tui(message)))
        line.set_class(error, "-error")

    def _show_attachments(self) -> None:
        names = ", ".join(p.name for p in self.attachments)
        note = f"attached: {names}" if names else "no files attached"
        if self.fields and "attachments" not in self.fields:
            note += " · this daemon does not take attachments yet"
        self.query_one("#attached", Static).update(Text(note))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input.id != "attach" or not event.value.strip():
            return
        try:
            self.attachments.append(resolve_attachment(event.value, self.cwd))
        except ValueError as err:
            self.status(str(err), error=True)
            return
        event.input.value = ""
        self.status("")
        self._show_attachments()

    def action_drop_attachment(self) -> None:
        if self.attachments:
            self.attachments.pop()
            self._show_attachments()

    def action_cancel(self) -> None:
        self.app.pop_screen()

    def submission(self) -> Submission:
        """The form as a submission; ``ValueError`` with one line saying what to fix."""
        request = self.query_one("#request", TextArea).text.strip()
        if not request:
            raise ValueError("write the request first: what should the firm produce?")
        raw_budget = self.query_one("#budget", Input).value.strip()
        budget = parse_usd(raw_budget) if raw_budget else None
        if raw_budget and budget is None:
            raise ValueError(f"budget {raw_budget!r} is not a positive amount: e.g. 2.50")
        if self.attachments and "attachments" not in self.fields:
            raise ValueError("this daemon does not take attachments: drop them (ctrl+r)")
        persona = self.query_one("#persona", Select).value
        runner = self.query_one("#runner", Select)
        return Submission(
            request=request,
            persona=None if persona in (AUTO, Select.BLANK) else str(persona),
            budget_usd=budget,
            offline=self.query_one("#offline", MarkedCheckbox).value,
            attachments=tuple(str(p) for p in self.attachments),
            # Sent only when changed: the daemon's own setting is the default otherwise.
            runner=None
            if runner.disabled or runner.value == self.ctx.default_runner
            else str(runner.value),
            actor=fit_submitter(self.ctx.actor) if "actor" in self.fields else None,
        )

    def action_submit(self) -> None:
        if self.submitting:
            return
        try:
            submission = self.submission()
        except ValueError as err:
            self.status(str(err), error=True)
            return
        self.send(submission)

    @work(exclusive=True, group="submit")
    async def send(self, submission: Submission) -> None:
        self.submitting = True
        self.status("Submitting… the firm classifies and plans the request.")
        try:
            created = await self.ctx.source.submit(submission)
        except AgentfirmError as err:
            self.status(f"⚠ {err}", error=True)
            return
        finally:
            self.submitting = False
        from .task_view import TaskScreen

        self.app.switch_screen(TaskScreen(self.ctx, str(created["task_id"])))
