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

from agentfirm.domain.status import FINAL_STATUSES

if TYPE_CHECKING:
    from agentfirm.settings import Settings

daemon_app = typer.Typer(
    help="The background service that keeps tasks running: start, stop, status, logs.",
    no_args_is_help=True,
)

NOT_RUNNING = 3
"""``daemon status``'s exit code when no daemon runs (systemctl's "program is not running")."""

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


def _settings() -> Settings:
    from agentfirm.cli.context import env_for, settings_for

    return settings_for(env_for())


@daemon_app.command("start")
def daemon_start(
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached (for systemd); stop with SIGTERM.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Start the daemon in the background (a running one is left alone)."""
    from agentfirm.cli.output import console, emit_json
    from agentfirm.daemon import process

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
    from agentfirm.cli.output import console
    from agentfirm.daemon import process

    stopped = process.stop(_settings())
    console().print("agentfirm daemon stopped" if stopped else "agentfirm daemon is not running")


@daemon_app.command("status")
def daemon_status(as_json: JsonOpt = False) -> None:
    """Whether the daemon runs, its pid, socket and version (--json: one object). Exit 0 when
    it runs, 3 when it does not (as `systemctl status` does)."""
    from agentfirm.cli.context import env_for, paths_for
    from agentfirm.cli.output import emit_json, say
    from agentfirm.daemon import process

    status = process.status_at(paths_for(env_for()))
    if as_json:
        emit_json(status.to_json())
    elif status.running:
        say(f"running (pid {status.pid}, version {status.version}) on {status.socket}")
    else:
        say("not running")
    if not status.running:
        raise typer.Exit(NOT_RUNNING)


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
    from agentfirm.api.follow import follow_sync
    from agentfirm.api.wire import DaemonError
    from agentfirm.cli.context import start_daemon
    from agentfirm.cli.follow import PATIENCE_S

    with start_daemon(_settings()) as client:
        last = after_seq
        try:
            if as_json:
                for event in follow_sync(
                    client.socket, task_id, after_seq=after_seq, patience=PATIENCE_S
                ):
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
    from agentfirm.cli.answers import TerminalAnswers
    from agentfirm.cli.context import actor
    from agentfirm.cli.follow import Follower
    from agentfirm.cli.output import console, print_cost_table

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
    from agentfirm.cli.output import console, error
    from agentfirm.errors import EXIT_BUDGET, EXIT_FAILED, EXIT_REJECTED

    if not as_json:
        console().print(f"\nstatus: [bold]{status}[/]   task: {task_id}")
    if status not in FINAL_STATUSES and status != "awaiting_budget":
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
