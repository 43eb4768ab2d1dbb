"""``tasks list|show|watch|cancel`` and ``costs``.

Reads ask the daemon when one runs and the store otherwise (one builder, ``agentfirm.views``,
makes both answers, so they never differ); ``--no-daemon`` always reads the store. ``tasks
cancel`` goes through the daemon (started on demand), which stops the task where it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentfirm.cli_context import (
    JsonOpt,
    NoDaemonOpt,
    actor,
    env_for,
    running_daemon,
    settings_for,
    start_daemon,
    with_app,
)
from agentfirm.cli_daemon import tasks_watch

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from agentfirm.app import App
    from agentfirm.store.base import Store

tasks_app = typer.Typer(help="List and inspect tasks.", no_args_is_help=True)
TaskArg = Annotated[str, typer.Argument(help="Task id (see `agentfirm tasks list`).")]


def _read(
    no_daemon: bool,
    remote: Callable[[Any], Any],
    local: Callable[[Store], Awaitable[Any]],
) -> Any:
    """``remote(client)`` when a daemon runs, else ``local(store)`` in this process."""
    env = env_for()
    client = None if no_daemon else running_daemon(settings_for(env))
    if client is not None:
        with client:
            return remote(client)

    async def body(app_: App) -> Any:
        return await local(app_.store)

    return with_app(env, body)


@tasks_app.command("list")
def tasks_list(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """Tasks, newest first."""
    from agentfirm.cli_output import console, emit_json, print_rows, usd
    from agentfirm.views import task_rows

    rows = _read(
        no_daemon,
        lambda client: client.tasks(limit=limit),
        lambda store: task_rows(store, limit=limit),
    )
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
    )


def status_label(row: dict[str, Any]) -> str:
    """The status, and what the task waits on when it waits on someone (``executing ⏸
    failure``: a failed module's question, which its status alone does not tell)."""
    waiting = row.get("waiting_on")  # absent from an older daemon's rows
    return f"{row['status']} ⏸ {waiting}" if waiting else str(row["status"])


@tasks_app.command("show")
def tasks_show(task_id: TaskArg, as_json: JsonOpt = False, no_daemon: NoDaemonOpt = False) -> None:
    """One task: status, modules, transitions."""
    from agentfirm.cli_output import console, emit_json, print_rows, usd
    from agentfirm.views import task_detail

    data = _read(no_daemon, lambda client: client.task(task_id), lambda s: task_detail(s, task_id))
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{data['task_id']}[/]  {data['status']}  persona {data['persona']}")
    out.print(f"request: {data['request']}")
    out.print(f"cost {usd(data['cost_usd'])} of budget {usd(data['budget_usd'])}")
    if data.get("deliverable_path"):
        out.print(f"deliverable: {data['deliverable_path']}")
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
    )
    out.print()
    print_rows(
        out,
        ["at", "from", "to", "actor", "reason"],
        [
            [t["at"][11:19], t["from"] or "—", t["to"], t["actor"], t["reason"]]
            for t in data["transitions"]
        ],
    )


tasks_app.command("watch")(tasks_watch)


@tasks_app.command("cancel")
def tasks_cancel(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the task's log.")] = "",
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """Stop a task for good (it moves to aborted; what it spent stays on the ledger)."""
    from agentfirm.cli_output import console, emit_json
    from agentfirm.master.transitions import cancel

    why = reason or "cancelled on the command line"
    if no_daemon:

        async def body(app_: App) -> str:
            app_.locks.acquire(task_id)  # refuses a task another process is driving
            return str(await cancel(app_.store, app_.bus, task_id, actor=actor(), reason=why))

        status = with_app(env_for(), body)
    else:
        with start_daemon(settings_for(env_for())) as client:
            status = str(client.cancel(task_id, reason=why, actor=actor())["status"])
    if as_json:
        emit_json({"task_id": task_id, "status": status})
    else:
        console().print(f"task {task_id}: {status}")


def costs(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """A task's costs: by module, tier and provider, and every call on the ledger."""
    from agentfirm.cli_output import console, emit_json, print_cost_table, print_rows, usd
    from agentfirm.views import task_costs

    data = _read(no_daemon, lambda client: client.costs(task_id), lambda s: task_costs(s, task_id))
    if as_json:
        emit_json(data)
        return
    out = console()
    print_cost_table(out, data, title=f"Costs of {task_id}")
    out.print()
    print_rows(
        out,
        ["call", "module", "tier", "model", "in", "cached", "out", "cost", "ms", "outcome"],
        [
            [
                c["call_id"],
                c["module_id"] or "—",
                c["tier"],
                f"{c['provider']}:{c['model']}",
                str(c["input_tokens"]),
                str(c["cached_input_tokens"]),
                str(c["output_tokens"]),
                usd(c["cost_usd"]),
                str(c["latency_ms"]),
                c["outcome"] + (" (sim)" if c["simulated"] else ""),
            ]
            for c in data["calls"]
        ],
    )
