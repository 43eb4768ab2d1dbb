"""``approve``, ``reject``, ``revise`` and ``resume``: answering what a task waits for, from any
terminal, and driving a stopped task again.

Through the daemon (started on demand) a pending question is decided at once and the task
wakes; a task nothing drives (planned with ``agentfirm plan``, or stopped) is driven by the
daemon while this terminal follows it. ``--no-daemon`` does it all in this process: a decision
lands in the store, where whoever drives the task picks it up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentfirm.cli.commands.run import (
    answerer,
    check_can_ask,
    drive_here,
    finish,
)
from agentfirm.cli.context import (
    BudgetOpt,
    JsonOpt,
    NoDaemonOpt,
    OfflineOpt,
    OutOpt,
    YesOpt,
    actor,
    check_out_file,
    env_for,
    parse_budget,
    settings_for,
    start_daemon,
    with_app,
)
from agentfirm.cli.interrupt import left_resumable
from agentfirm.domain.decision import Decision

if TYPE_CHECKING:
    from decimal import Decimal

    from agentfirm.app import App
    from agentfirm.master.agent import RunResult

TaskArg = Annotated[str, typer.Argument(help="A task awaiting plan approval.")]


# ---------------------------------------------------------------------------- pending questions
def _check_kind(task_id: str, kind: str, decision: str) -> None:
    from agentfirm.errors import BadInput

    if decision == "revise" and kind != "review":
        raise BadInput(
            f"task {task_id} waits for a {kind} decision, not a draft review",
            hint=f"use agentfirm approve|reject {task_id}",
        )


def _decide_remote(client: Any, task_id: str, answer: Decision) -> dict[str, Any] | None:
    """Decide the task's pending question through the daemon (it wakes the task at once). None
    when nothing is pending."""
    pending = client.approvals(task_id, pending=True)
    if not pending:
        return None
    _check_kind(task_id, pending[0]["kind"], answer.decision)
    row: dict[str, Any] = client.decide(pending[0]["id"], answer, actor=actor())
    return row


def _decide_here(task_id: str, answer: Decision) -> dict[str, Any] | None:
    """Decide the task's pending question in the store (``--no-daemon``): whoever drives the task
    sees the answer within its poll interval, a daemon when it next starts. None when nothing
    is pending."""
    from agentfirm.master.approvals import StoreDecider

    async def body(app_: App) -> dict[str, Any] | None:
        decider = StoreDecider(app_.store, app_.bus, redact=app_.redactor.redact)
        pending = await decider.pending(task_id)
        if not pending:
            return None
        _check_kind(task_id, pending[0].kind, answer.decision)
        decided = await decider.decide(pending[0].id, answer, actor=actor())
        return decided.model_dump(mode="json")

    return with_app(env_for(), body)


def _answers_itself(task: dict[str, Any]) -> bool:
    """Whether a task (as the daemon shows it) was created with ``--yes``: the daemon answers its
    questions, so following it needs no terminal."""
    return bool((task.get("policy") or {}).get("auto_approve"))


def _print_decided(row: dict[str, Any], *, as_json: bool) -> None:
    from agentfirm.cli.output import console, emit_json

    if as_json:
        emit_json(row)
    else:
        console().print(f"task {row['task_id']}: {row['kind']} {row['decision']}")


def _print_status(task_id: str, status: str, *, as_json: bool) -> None:
    from agentfirm.cli.output import console, emit_json

    if as_json:
        emit_json({"task_id": task_id, "status": status})
    else:
        console().print(f"task {task_id}: {status}")


# ---------------------------------------------------------------------------- commands
def approve(
    task_id: TaskArg,
    budget: BudgetOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
    offline: OfflineOpt = False,
    out_file: OutOpt = None,
) -> None:
    """Approve what a task waits for. A task the daemon hosts: its pending question (plan with
    --budget, more budget, the draft). A task planned with `agentfirm plan`: run it, through
    review, to the end."""
    budget_usd = parse_budget(budget)
    if no_daemon:
        decided = _decide_here(task_id, Decision("approved", budget_usd=budget_usd))
        if decided is not None:
            _print_decided(decided, as_json=as_json)
            return
        _approve_here(task_id, budget_usd, yes=yes, as_json=as_json, offline=offline, out=out_file)
        return
    from agentfirm.cli.answers import FirstPlanApproved
    from agentfirm.cli.follow import drive
    from agentfirm.cli.output import console
    from agentfirm.errors import BadInput

    settings = settings_for(env_for(offline))
    with start_daemon(settings) as client:
        decided = _decide_remote(client, task_id, Decision("approved", budget_usd=budget_usd))
        if decided is not None:
            _print_decided(decided, as_json=as_json)
            return
        check_out_file(out_file)
        task = client.task(task_id)
        status = task["status"]
        if status != "awaiting_plan_approval":  # said first, as in-process
            raise BadInput(
                f"task {task_id} is {status}, not awaiting plan approval",
                hint=f"see `agentfirm tasks show {task_id}`",
            )
        auto = yes or _answers_itself(task)
        check_can_ask(yes=auto)
        resumed = client.resume(task_id, budget_usd=budget_usd, offline=settings.offline)
        out = None if as_json else console()
        answers = FirstPlanApproved(answerer(yes=auto, as_json=as_json), actor=actor())
        result = drive(client, task_id, after_seq=resumed["after_seq"], out=out, answers=answers)
    finish(result, out=out, as_json=as_json, out_file=out_file)


def _approve_here(
    task_id: str,
    budget_usd: Decimal | None,
    *,
    yes: bool,
    as_json: bool,
    offline: bool,
    out: Path | None,
) -> None:
    from agentfirm.money import usd_to_nano

    check_out_file(out)
    budget_nano = usd_to_nano(budget_usd) if budget_usd is not None else None

    async def body(app_: App) -> RunResult:
        return await drive_here(
            app_,
            task_id,
            yes=yes,
            as_json=as_json,
            offline=offline,
            budget_nano=budget_nano,
            waiting_for_approval=True,
        )

    with left_resumable([task_id]) as stopping:
        result = with_app(env_for(offline), body, on_interrupt=stopping)
    finish(result.to_json(), out=None, as_json=as_json, out_file=out)


def reject(
    task_id: Annotated[str, typer.Argument(help="A task awaiting plan approval or budget.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the task's log.")] = "",
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """Reject what a task waits for (its plan or draft; a budget question: abort), or a task
    planned with `agentfirm plan`, or abort one that stopped for budget."""
    from agentfirm.master.transitions import reject as reject_task

    why = reason or "rejected on the command line"
    if not no_daemon:
        with start_daemon(settings_for(env_for())) as client:
            decided = _decide_remote(client, task_id, Decision("rejected", reason))
            if decided is None:
                status = str(client.reject(task_id, reason=why, actor=actor())["status"])
        if decided is not None:
            _print_decided(decided, as_json=as_json)
        else:
            _print_status(task_id, status, as_json=as_json)
        return
    decided = _decide_here(task_id, Decision("rejected", reason))
    if decided is not None:
        _print_decided(decided, as_json=as_json)
        return

    async def body(app_: App) -> str:
        reason = app_.redactor.redact(why)
        return str(await reject_task(app_.store, app_.bus, task_id, actor=actor(), reason=reason))

    _print_status(task_id, with_app(env_for(), body), as_json=as_json)


def revise(
    task_id: Annotated[str, typer.Argument(help="A task whose draft awaits review.")],
    notes: Annotated[str, typer.Option("--notes", "-n", help="What to change.")],
    module: Annotated[
        list[str] | None,
        typer.Option("--module", "-m", help="Re-run this module (repeat; default: all)."),
    ] = None,
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
) -> None:
    """Send a draft back with notes: the named modules and everything downstream re-run."""
    from agentfirm.errors import BadInput

    if not notes.strip():
        raise BadInput("--notes is empty", hint='say what to change, e.g. --notes "cite sources"')
    modules = tuple(module or ())
    if no_daemon:
        decided = _decide_here(task_id, Decision("revise", notes, modules=modules))
    else:
        with start_daemon(settings_for(env_for())) as client:
            decided = _decide_remote(client, task_id, Decision("revise", notes, modules=modules))
    if decided is None:
        raise BadInput(
            f"task {task_id} has no draft waiting for review",
            hint=f"see agentfirm tasks show {task_id}",
        )
    _print_decided(decided, as_json=as_json)


def resume(
    task_id: Annotated[str, typer.Argument(help="A task that stopped before its end.")],
    budget: Annotated[
        str | None,
        typer.Option("--budget", "-b", help="New ceiling in USD (a task stopped for budget)."),
    ] = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
    offline: OfflineOpt = False,
    out_file: OutOpt = None,
) -> None:
    """Pick a task up where it stopped (a crash, Ctrl-C, or budget) and drive it to the end.

    Completed modules are not run again. With --budget, a task waiting for budget gets that
    ceiling first."""
    from agentfirm.money import usd_to_nano

    budget_usd = parse_budget(budget)
    check_out_file(out_file)
    if not no_daemon:
        from agentfirm.cli.follow import drive
        from agentfirm.cli.output import console
        from agentfirm.domain.status import TaskStatus
        from agentfirm.master.transitions import refuse_ended

        settings = settings_for(env_for(offline))
        out = None if as_json else console()
        with start_daemon(settings) as client:
            task = client.task(task_id)
            # An ended task is said first, before the terminal is asked for, as in-process.
            refuse_ended(task_id, TaskStatus(task["status"]), "resume")
            auto = yes or _answers_itself(task)
            check_can_ask(yes=auto)
            resumed = client.resume(task_id, budget_usd=budget_usd, offline=settings.offline)
            answers = answerer(yes=auto, as_json=as_json)
            result = drive(
                client, task_id, after_seq=resumed["after_seq"], out=out, answers=answers
            )
        finish(result, out=out, as_json=as_json, out_file=out_file)
        return
    budget_nano = usd_to_nano(budget_usd) if budget_usd is not None else None

    async def body(app_: App) -> RunResult:
        return await drive_here(
            app_, task_id, yes=yes, as_json=as_json, offline=offline, budget_nano=budget_nano
        )

    with left_resumable([task_id]) as stopping:
        ended = with_app(env_for(offline), body, on_interrupt=stopping)
    finish(ended.to_json(), out=None, as_json=as_json, out_file=out_file)
