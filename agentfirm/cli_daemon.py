"""CLI commands that talk to the daemon: ``daemon start|stop|status|logs`` and ``tasks watch ID``.

Registered by ``cli.py``. Like it, everything beyond typer is imported inside the commands.
``tasks watch`` exit codes follow the task: 0 completed, 1 failed (or the daemon stopped first),
3 waiting for budget, 4 rejected or aborted.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from agentfirm.domain import Event
    from agentfirm.settings import Settings

daemon_app = typer.Typer(
    help="The background service that keeps tasks running: start, stop, status, logs.",
    no_args_is_help=True,
)

_FINAL = ("completed", "failed", "rejected", "aborted")
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def _settings() -> Settings:
    from agentfirm.cli import _context, _env

    return _context(_env()).settings


@daemon_app.command("start")
def daemon_start(
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached (for systemd); stop with SIGTERM.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start the daemon in the background (a running one is left alone)."""
    from agentfirm.cli_output import console, emit_json
    from agentfirm.daemon import process  # type: ignore[import-not-found]

    if foreground:
        raise typer.Exit(process.main())
    status = process.start(_settings())
    if as_json:
        emit_json(status.to_json())
    else:
        console().print(f"agentfirm daemon running (pid {status.pid}) on {status.socket}")


@daemon_app.command("stop")
def daemon_stop() -> None:
    """Stop the daemon (SIGTERM) and wait for it: tasks resume at the next start."""
    from agentfirm.cli_output import console
    from agentfirm.daemon import process

    stopped = process.stop(_settings())
    console().print("agentfirm daemon stopped" if stopped else "agentfirm daemon is not running")


@daemon_app.command("status")
def daemon_status(as_json: JsonOpt = False) -> None:
    """Whether the daemon runs, its pid, socket and version (--json: one object)."""
    from agentfirm.cli_output import console, emit_json
    from agentfirm.daemon import process

    status = process.status(_settings())
    if as_json:
        emit_json(status.to_json())
    elif status.running:
        console().print(f"running (pid {status.pid}, version {status.version}) on {status.socket}")
    else:
        console().print("not running")


@daemon_app.command("logs")
def daemon_logs(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many last lines.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """The daemon's log (JSON lines), newest last."""
    from agentfirm.daemon import process

    path = process.log_path(_settings().paths)
    for line in process.tail(path, lines):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if follow:
        for line in process.follow(path):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()


def tasks_watch(
    task_id: Annotated[str, typer.Argument(help="Task id (see `agentfirm tasks list`).")],
    after_seq: Annotated[
        int, typer.Option("--after-seq", help="Start after this event seq (to resume).")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Events as JSON lines.")] = False,
) -> None:
    """Follow a task live through the daemon; answer its approvals here when on a terminal."""
    from agentfirm.cli_output import console, print_cost_table
    from agentfirm.daemon.client import ensure_running  # type: ignore[import-not-found]
    from agentfirm.daemon.process import DaemonError  # type: ignore[import-not-found]
    from agentfirm.errors import EXIT_BUDGET, EXIT_FAILED, EXIT_REJECTED

    with ensure_running(_settings()) as client:
        last = after_seq
        try:
            if as_json:
                for event in client.events(task_id, after_seq=after_seq):
                    last = int(event["seq"])
                    sys.stdout.write(json.dumps(event) + "\n")
                    sys.stdout.flush()
            else:
                watch = _Watch(client, console(), interactive=sys.stdin.isatty())
                watch.run(task_id, after_seq)
                last = watch.last_seq
                print_cost_table(watch.out, client.costs(task_id))
            status = client.task(task_id)["status"]
        except DaemonError as err:  # the daemon stopped under us: say where to pick up
            raise DaemonError(
                f"{err.message}; watched up to event {last}",
                hint=f"agentfirm tasks watch {task_id} --after-seq {last}",
            ) from err
    if not as_json:
        console().print(f"\nstatus: [bold]{status}[/]   task: {task_id}")
    if status not in _FINAL:
        from agentfirm.cli_output import error

        error(
            f"the event stream ended before task {task_id} finished (the daemon stopped?); "
            f"resume with: agentfirm tasks watch {task_id} --after-seq {last}"
        )
    codes = {
        "completed": 0,
        "awaiting_budget": EXIT_BUDGET,
        "rejected": EXIT_REJECTED,
        "aborted": EXIT_REJECTED,
    }
    code = codes.get(status, EXIT_FAILED)
    if code:
        raise typer.Exit(code)


class _Watch:
    """Renders a task's events: one line per module event, a cost ticker, inline approvals."""

    def __init__(self, client: Any, out: Console, *, interactive: bool) -> None:
        from agentfirm.cli_output import ProgressPrinter

        self.client = client
        self.out = out
        self.interactive = interactive
        self.printer = ProgressPrinter(out)
        self.spent = 0.0
        self.status = "…"
        self.last_seq = 0

    def _ticker(self) -> str:
        return f"{self.status} · spent ${self.spent:.4f}"

    def run(self, task_id: str, after_seq: int) -> None:
        from agentfirm.domain import Event

        with self.out.status(self._ticker()) as bar:
            for raw in self.client.events(task_id, after_seq=after_seq):
                event = Event.model_validate(raw)
                self.last_seq = event.seq
                self._show(event)
                bar.update(self._ticker())
                if event.type == "approval.requested" and self.interactive:
                    bar.stop()
                    self._answer(task_id, str(event.payload.get("approval_id")))
                    bar.start()

    def _show(self, event: Event) -> None:
        p = event.payload
        self.printer(event)
        if event.type == "task.transition":
            self.status = str(p.get("to"))
        elif event.type == "cost.updated":
            self.spent = float(p.get("spent_usd", self.spent))
        elif event.type == "approval.requested":
            self.out.print(f"  [magenta]?[/] {p.get('question', '')}  ({p.get('approval_id')})")
        elif event.type == "approval.decided":
            self.out.print(
                f"  [magenta]✓[/] {p.get('kind')} {p.get('decision')} by {p.get('actor')}"
            )
        elif event.type == "task.completed":
            self.out.print(f"  [green]■[/] deliverable: {p.get('deliverable')}")

    # ------------------------------------------------------------------ inline approvals
    def _answer(self, task_id: str, approval_id: str) -> None:
        from agentfirm.errors import BadInput

        pending = {a["id"]: a for a in self.client.approvals(task_id, pending=True)}
        approval = pending.get(approval_id)
        if approval is None:
            return  # answered elsewhere meanwhile
        ask = {"plan": self._plan, "budget": self._budget, "review": self._review}.get(
            approval["kind"]
        )
        if ask is None:
            return
        while True:
            choice = ask(approval["payload"])
            if choice is None:
                self.out.print("  left pending: answer it from another terminal")
                return
            decision, extra = choice
            try:
                self.client.decide(approval_id, decision, actor=_actor(), **extra)
                return
            except BadInput as err:
                self.out.print(f"  [red]{err}[/]")
                if "already decided" in str(err):
                    return

    def _input(self, prompt: str) -> str:
        from rich.markup import escape

        return self.out.input(escape(prompt)).strip()

    def _plan(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        from agentfirm.cli_output import print_rows, usd

        by_module = payload.get("estimate", {}).get("by_module", {})
        print_rows(
            self.out,
            ["module", "tier", "depends on", "expected", "worst case"],
            [
                [
                    m["id"],
                    m["tier"],
                    ", ".join(m["depends_on"]) or "—",
                    usd(by_module.get(m["id"], {}).get("expected_usd", 0)),
                    usd(by_module.get(m["id"], {}).get("worst_usd", 0)),
                ]
                for m in payload.get("modules", [])
            ],
        )
        self.out.print(payload.get("question", ""))
        while True:
            answer = self._input("Approve? [y]es / [n]o / [b]udget USD / [s]kip: ").lower()
            if answer in ("", "y", "yes"):
                return "approved", {}
            if answer in ("n", "no"):
                return "rejected", {}
            if answer in ("s", "skip"):
                return None
            if answer.startswith("b"):
                amount = answer[1:].strip() or self._input("budget (USD): ")
                return "approved", {"budget_usd": amount.lstrip("$")}

    def _budget(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        self.out.print(payload.get("question", ""))
        for module, cost in (payload.get("by_module") or {}).items():
            self.out.print(f"  {module:<28} ${cost:.4f}")
        suggested = payload.get("suggested_ceiling_usd")
        answer = self._input(f"New ceiling USD [{suggested}] / [a]bort / [s]kip: ").lower()
        if answer in ("a", "abort"):
            return "aborted", {}
        if answer in ("s", "skip"):
            return None
        return "approved", {"budget_usd": answer.lstrip("$")} if answer else {}

    def _review(self, payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        from rich.markdown import Markdown

        self.out.rule("Draft for review")
        self.out.print(Markdown(str(payload.get("draft_markdown", ""))))
        self.out.rule()
        while True:
            answer = self._input("[a]pprove / [r]evise / re[j]ect / [s]kip: ").lower() or "a"
            if answer in ("a", "approve"):
                return "approved", {}
            if answer in ("j", "reject"):
                return "rejected", {}
            if answer in ("s", "skip"):
                return None
            if answer in ("r", "revise"):
                notes = self._input("revision notes: ")
                names = self._input("modules to re-run (blank = all): ").split(",")
                return "revise", {"notes": notes, "modules": [n.strip() for n in names if n]}


def _actor() -> str:
    import getpass

    return f"cli:{getpass.getuser()}"
