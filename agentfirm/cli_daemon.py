"""CLI commands that talk to the daemon: ``daemon start|stop|status|logs`` and ``tasks watch ID``.

Registered by ``cli.py``. Like it, everything beyond typer is imported inside the commands.
``tasks watch`` ends when the task is final or stops for budget; its exit code follows the task:
0 completed, 1 failed (or the daemon stopped first), 3 waiting for budget, 4 rejected or
aborted.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from agentfirm.settings import Settings

daemon_app = typer.Typer(
    help="The background service that keeps tasks running: start, stop, status, logs.",
    no_args_is_help=True,
)

_FINAL = ("completed", "failed", "rejected", "aborted")
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def _settings() -> Settings:
    from agentfirm.cli_context import env_for, settings_for

    return settings_for(env_for())


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
    from agentfirm.cli_context import start_daemon
    from agentfirm.daemon.process import DaemonError  # type: ignore[import-not-found]

    with start_daemon(_settings()) as client:
        last = after_seq
        try:
            if as_json:
                for event in client.events(task_id, after_seq=after_seq):
                    last = int(event["seq"])
                    sys.stdout.write(json.dumps(event) + "\n")
                    sys.stdout.flush()
                    if event["type"] == "task.result" and _stopped(client, task_id, event):
                        break
            else:
                last = _watch(client, task_id, after_seq)
            status = client.task(task_id)["status"]
        except DaemonError as err:  # the daemon stopped under us: say where to pick up
            raise DaemonError(
                f"{err.message}; watched up to event {last}",
                hint=f"agentfirm tasks watch {task_id} --after-seq {last}",
            ) from err
    _exit_for(task_id, status, last, as_json=as_json)


def _stopped(client: Any, task_id: str, event: dict[str, Any]) -> bool:
    """Whether a ``task.result`` ends the watch: the task is final (its stream ends anyway) or
    stays stopped for budget (waiting for ``resume --budget``, which a watch cannot give)."""
    status = (event["payload"].get("result") or {}).get("status")
    if status != "budget_exhausted":
        return status is not None
    return bool(client.task(task_id)["status"] == "awaiting_budget")


def _watch(client: Any, task_id: str, after_seq: int) -> int:
    """Progress, a cost ticker and inline answers (on a terminal); the last seq seen."""
    from agentfirm.cli_answers import TerminalAnswers
    from agentfirm.cli_context import actor
    from agentfirm.cli_follow import Follower
    from agentfirm.cli_output import console, print_cost_table

    out = console()
    answers = TerminalAnswers(out, actor=actor()) if sys.stdin.isatty() else None
    follower = Follower(client, out, answers)
    follower.follow(
        task_id,
        after_seq,
        stop_at=lambda payload: _stopped(client, task_id, {"payload": payload}),
    )
    print_cost_table(out, client.costs(task_id))
    return follower.last_seq


def _exit_for(task_id: str, status: str, last: int, *, as_json: bool) -> None:
    from agentfirm.cli_output import console, error
    from agentfirm.errors import EXIT_BUDGET, EXIT_FAILED, EXIT_REJECTED

    if not as_json:
        console().print(f"\nstatus: [bold]{status}[/]   task: {task_id}")
    if status not in _FINAL and status != "awaiting_budget":
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
