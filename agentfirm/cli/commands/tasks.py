"""``tasks list|show|watch|cancel`` and ``costs``.

Reads ask the daemon when one runs and the store otherwise (one builder, ``agentfirm.api.views``,
makes both answers, so they never differ); ``--no-daemon`` always reads the store. ``tasks
cancel`` goes through the daemon (started on demand), which stops the task where it runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentfirm.cli.commands.daemon import tasks_watch
from agentfirm.cli.context import (
    JsonOpt,
    NoDaemonOpt,
    actor,
    daemon_at,
    env_for,
    paths_for,
    plain_reader,
    settings_for,
    start_daemon,
    with_app,
    with_store,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Iterator

    from agentfirm.app import App
    from agentfirm.store.base import Reads, Store

tasks_app = typer.Typer(help="List and inspect tasks.", no_args_is_help=True)
TaskArg = Annotated[str, typer.Argument(help="Task id (see `agentfirm tasks list`).")]


def _read(
    no_daemon: bool,
    remote: Callable[[Any], Any],
    local: Callable[[Store], Awaitable[Any]],
) -> Any:
    """``remote(client)`` when a daemon runs, else ``local(store)`` in this process (the store
    alone: a read needs no secret, persona or router)."""
    env = env_for()
    client = None if no_daemon else daemon_at(paths_for(env))
    if client is not None:
        with client:
            return remote(client)
    return with_store(settings_for(env), local)


def _read_plainly(
    no_daemon: bool,
    remote: Callable[[Any], Any],
    local: Callable[[Reads], Coroutine[Any, Any, Any]],
) -> Any:
    """``_read`` of a ``local`` that reads only ``Reads``: in this process, a plain reader of
    the file serves it when it can (``context.plain_reader``), else the store."""
    env = env_for()
    client = None if no_daemon else daemon_at(paths_for(env))
    if client is not None:
        with client:
            return remote(client)
    reader = plain_reader(env)
    if reader is not None:
        from agentfirm.store.sqlite.reader import run_now

        with reader:
            return run_now(local(reader))
    return with_store(settings_for(env), local)


@tasks_app.command("list")
def tasks_list(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """Tasks, newest first."""
    from agentfirm.cli.output import console, emit_json, print_rows, usd

    async def local(store: Reads) -> Any:
        from agentfirm.api.views import task_rows
        from agentfirm.master.task_lock import TaskLocks

        locks = TaskLocks(paths_for(env_for()).runtime_dir / "locks")
        return await task_rows(store, limit=limit, driven=locks.held)

    rows = _read_plainly(no_daemon, lambda client: client.tasks(limit=limit), local)
    if as_json:
        emit_json(rows)
        return
    print_rows(
        console(),
        ["task", "status", "persona", "cost", "budget", "created", "request"],
        [
            [
                r["task_id"],
                status_label(r),
                r["persona"] or "—",
                usd(r["cost_usd"]),
                usd(r["budget_usd"]),
                r["created_at"][:19].replace("T", " "),
                (r["request"][:48] + "…") if len(r["request"]) > 49 else r["request"],
            ]
            for r in rows
        ],
        keep=("status", "cost", "budget"),
    )


def status_label(row: dict[str, Any]) -> str:
    """The status, and what the task waits on when it waits on someone (``executing ⏸
    failure``: a failed module's question, which its status alone does not tell)."""
    waiting = row.get("waiting_on")  # absent from an older daemon's rows
    return f"{row['status']} ⏸ {waiting}" if waiting else str(row["status"])


@tasks_app.command("show")
def tasks_show(task_id: TaskArg, as_json: JsonOpt = False, no_daemon: NoDaemonOpt = False) -> None:
    """One task: status, modules, transitions."""
    from agentfirm.cli.output import console, emit_json, print_rows, usd

    async def local(store: Store) -> Any:
        from agentfirm.api.views import task_detail

        return await task_detail(store, task_id)

    data = _read(no_daemon, lambda client: client.task(task_id), local)
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{data['task_id']}[/]  {data['status']}  persona {data['persona']}")
    out.print(f"request: {data['request']}", markup=False)
    out.print(f"cost {usd(data['cost_usd'])} of budget {usd(data['budget_usd'])}")
    if data.get("deliverable_path"):
        out.print(f"deliverable: {data['deliverable_path']}", markup=False)
    print_rows(
        out,
        ["module", "wave", "tier", "status", "attempts", "model", "cost"],
        [
            [
                m["id"],
                str(m["wave"]),
                m["tier"],
                m["status"],
                str(m["attempts"]),
                f"{m['provider'] or ''}:{m['model'] or ''}",
                usd(m["cost_usd"]),
            ]
            for m in data["modules"]
        ],
        keep=("status", "cost"),
    )
    out.print()
    print_rows(
        out,
        ["at", "from", "to", "actor", "reason"],
        [
            [t["at"][11:19], t["from"] or "—", t["to"], t["actor"], t["reason"]]
            for t in data["transitions"]
        ],
        keep=("to",),
    )


tasks_app.command("watch")(tasks_watch)


@tasks_app.command("transcript")
def tasks_transcript(
    task_id: TaskArg,
    module: Annotated[str | None, typer.Option(help="Only this module's transcript.")] = None,
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """Every model turn (what was sent, what came back, its cost) and every tool call with its
    result, redacted, in order."""
    from agentfirm.cli.output import console, emit_json, print_transcript

    async def local(app_: App) -> dict[str, Any]:
        from agentfirm.api.views import task_transcript

        return await task_transcript(app_.store, app_.bus, task_id, module)

    # The events live on the bus, not in the store alone: read here, the whole App is built.
    env = env_for()
    client = None if no_daemon else daemon_at(paths_for(env))
    if client is not None:
        with client:
            data = client.transcript(task_id, module=module)
    else:
        data = with_app(env, local)
    if as_json:
        emit_json(data)
        return
    print_transcript(console(), data["entries"])


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the task's log.")] = "",
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """Stop a task for good (it moves to aborted; what it spent stays on the ledger). A running
    build is asked to stop and its calls in flight get the cancel grace to answer: it says at
    once what it waits for."""
    from agentfirm.cli.output import console, emit_json
    from agentfirm.daemon.driver_stop import ANSWER_S, answer_time
    from agentfirm.master.task_lock import TaskLocks

    why = reason or "cancelled on the command line"
    env = env_for()
    settings = settings_for(env)
    answer_s = answer_time(settings.cancel_grace_s)
    if no_daemon:
        from agentfirm.master.transitions import cancel_from_here

        async def body(app_: App) -> str:
            task = await app_.store.get_task(task_id)
            in_flight = await app_.store.calls_in_flight(task_id)
            _say_waiting(task_id, task.status, app_.locks.held(task_id), in_flight, answer_s)
            status = await cancel_from_here(
                app_.store,
                app_.bus,
                app_.locks,
                task_id,
                actor=actor(),
                reason=app_.redactor.redact(why),
                answer_s=answer_s,
                runner=task.policy.runner or app_.settings.runner,
            )
            return str(status)

        with _stopped_waiting(task_id):
            status = with_app(env, body)
    else:
        with start_daemon(settings) as client:
            shown = client.task(task_id)
            driven = TaskLocks(paths_for(env).runtime_dir / "locks").held(task_id)
            in_flight = int(shown.get("calls_in_flight") or 0)
            _say_waiting(task_id, shown["status"], driven, in_flight, answer_s)
            # The daemon answers once the build has (up to ``answer_s``), then may cut its
            # driver short (``ANSWER_S`` more): the request must outlast both.
            client.timeout = max(client.timeout, answer_s + 2 * ANSWER_S)
            with _stopped_waiting(task_id):
                status = str(client.cancel(task_id, reason=why, actor=actor())["status"])
    if as_json:
        emit_json({"task_id": task_id, "status": status})
    elif status == "aborting":
        console().print(
            f"task {task_id}: aborting — its build runs elsewhere and has not answered yet; it "
            "starts no new call once it hears, and the task ends aborted when it answers"
        )
    else:
        console().print(f"task {task_id}: {status}")


def cancel_wait_line(
    task_id: str, status: str, driven: bool, in_flight: int, answer_s: float
) -> str | None:
    """What ``tasks cancel`` says before it waits for a running build, the same through the
    daemon and ``--no-daemon``; None when it does not wait (no build runs: nothing drives the
    task and no call of it is in flight, or it waits for a person)."""
    from agentfirm.domain.status import TaskStatus
    from agentfirm.master.transitions import BUILDING

    if TaskStatus(status) not in BUILDING or not (driven or in_flight):
        return None
    if in_flight:
        calls = "1 call" if in_flight == 1 else f"{in_flight} calls"
        waits = f"waiting for {calls} in flight to answer"
    else:
        waits = "asking its build to stop"
    return (
        f"cancelling {task_id}: {waits} (up to {answer_s:g} s)… Ctrl-C stops waiting; the task "
        "still ends aborted"
    )


@contextmanager
def _stopped_waiting(task_id: str) -> Iterator[None]:
    """Ctrl-C while a cancel waits stops the waiting, not the cancel (the daemon goes on with
    it; ``--no-daemon`` leaves the task ``aborting`` for its driver): say so before exiting."""
    try:
        yield
    except KeyboardInterrupt:
        from agentfirm.cli.output import note

        note(
            f"stopped waiting; task {task_id} still ends aborted: see agentfirm tasks show "
            f"{task_id}"
        )
        raise


def _say_waiting(task_id: str, status: str, driven: bool, in_flight: int, answer_s: float) -> None:
    from agentfirm.cli.output import note

    line = cancel_wait_line(task_id, status, driven, in_flight, answer_s)
    if line is not None:
        note(line)


def costs(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
    calls: Annotated[
        int, typer.Option("--calls", min=0, help="Show this many calls, oldest first.")
    ] = 50,
    all_calls: Annotated[bool, typer.Option("--all", help="Show every call.")] = False,
) -> None:
    """A task's costs: by module, tier and provider, intake and build, and its calls (the first
    --calls N, or --all, streamed). A cost marked "≤" is an upper bound: a call abandoned after
    it was sent, booked at its reservation."""
    from agentfirm.cli.costs_stream import stream_costs, stream_costs_now

    limit = None if all_calls else calls
    title = f"Costs of {task_id}"
    env = env_for()
    client = None if no_daemon else daemon_at(paths_for(env))
    if client is not None:
        with client:

            def remote(size: int, after: int) -> dict[str, Any]:
                page: dict[str, Any] = client.costs(task_id, calls=size, after_seq=after)
                return page

            stream_costs_now(remote, limit=limit, as_json=as_json, out=None, title=title)
        return

    from agentfirm.api.views import task_costs

    reader = plain_reader(env)
    if reader is not None:
        from agentfirm.store.sqlite.reader import run_now

        with reader:

            def plain(size: int, after: int) -> dict[str, Any]:
                return run_now(task_costs(reader, task_id, calls=size, after_seq=after))

            stream_costs_now(plain, limit=limit, as_json=as_json, out=None, title=title)
        return

    async def body(store: Store) -> None:
        async def local(size: int, after: int) -> dict[str, Any]:
            return await task_costs(store, task_id, calls=size, after_seq=after)

        await stream_costs(local, limit=limit, as_json=as_json, out=None, title=title)

    with_store(settings_for(env), body)
