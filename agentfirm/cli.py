"""The ``agentfirm`` command line. Thin: parse, call the core, render through ``cli_output``.

Everything beyond typer is imported inside the commands so ``agentfirm --help`` stays instant.
Exit codes (ARCHITECTURE.md §8): 0 done, 1 failed, 2 bad input or config, 3 budget exhausted,
4 rejected or aborted. Errors are one line on stderr; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from agentfirm.cli_daemon import daemon_app, tasks_watch
from agentfirm.cli_db import db_app

if TYPE_CHECKING:
    from rich.console import Console

    from agentfirm.app import App
    from agentfirm.handoff.runners import RunnerName
    from agentfirm.master.agent import Observer, RunResult
    from agentfirm.master.decisions import Decider
    from agentfirm.secrets import Redactor, SecretStore
    from agentfirm.settings import Settings

T = TypeVar("T")

DEMO_REQUEST = (
    "Assess the patentability of a battery thermal-management method that uses phase-change "
    "material pockets between cylindrical cells: search prior art, analyse novelty against the "
    "closest references, and draft independent and dependent claims."
)
DEMO_LATENCY_MS = "200-900"

app = typer.Typer(
    name="agentfirm",
    help="A consulting firm of LLM agents: plan, approve, run in parallel, review — "
    "every cent on a ledger.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
tasks_app = typer.Typer(help="List and inspect tasks.", no_args_is_help=True)
personas_app = typer.Typer(help="Persona templates: list, show, validate.", no_args_is_help=True)
config_app = typer.Typer(help="Check and show the effective configuration.", no_args_is_help=True)
secrets_app = typer.Typer(help="Provider keys and tokens in the OS keyring.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(personas_app, name="personas")
app.add_typer(config_app, name="config")
app.add_typer(secrets_app, name="secrets")
app.add_typer(daemon_app, name="daemon")
app.add_typer(db_app, name="db")


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Readable logs on stderr and full tracebacks.")
    ] = False,
) -> None:
    del debug  # read by _debug(): main() needs it too, outside click's context


def _debug() -> bool:
    return "--debug" in sys.argv[1:]


JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]
PersonaOpt = Annotated[
    str | None, typer.Option("--persona", "-p", help="Persona id (skip classification).")
]
BudgetOpt = Annotated[str | None, typer.Option("--budget", "-b", help="Budget ceiling in USD.")]
YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Approve plan and draft non-interactively.")
]
OfflineOpt = Annotated[
    bool, typer.Option("--offline", help="Serve every tier with the offline provider.")
]
OutOpt = Annotated[
    Path | None, typer.Option("--out", "-o", help="Also write the deliverable here.")
]


# ---------------------------------------------------------------------------- plumbing
def _env(offline: bool = False, latency: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if offline:
        env["AGENTFIRM_OFFLINE"] = "1"
    if latency is not None:
        env.setdefault("AGENTFIRM_OFFLINE_LATENCY_MS", latency)
    return env


@dataclass
class _Context:
    settings: Settings
    redactor: Redactor
    secrets: SecretStore


def _context(env: dict[str, str]) -> _Context:
    from agentfirm.log import configure_logging
    from agentfirm.secrets import Redactor, SecretStore
    from agentfirm.settings import load_settings

    settings = load_settings(env)
    redactor = Redactor()
    settings.paths.ensure()
    configure_logging(
        log_path=settings.paths.log_path,
        redactor=redactor,
        debug=_debug(),
        level="debug" if _debug() else settings.log_level,
    )
    secrets = SecretStore(redactor, env=env)
    for name in secrets.KNOWN:  # register every secret with the redactor before work starts
        secrets.get(name)
    return _Context(settings, redactor, secrets)


def _with_app(env: dict[str, str], body: Callable[[App], Awaitable[T]]) -> T:
    from agentfirm.app import App

    ctx = _context(env)

    async def main() -> T:
        app_ = await App.open(ctx.settings, redactor=ctx.redactor, secrets=ctx.secrets, env=env)
        async with app_:
            return await body(app_)

    return _run(main())


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def _fail(message: str, code: int = 2) -> typer.Exit:
    from agentfirm.cli_output import error

    error(message)
    return typer.Exit(code)


# ---------------------------------------------------------------------------- run / demo
def _parse_budget(budget: str | None) -> Decimal | None:
    from agentfirm.errors import BadInput

    if budget is None:
        return None
    try:
        value = Decimal(budget.strip().lstrip("$"))
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or value <= 0:
        raise BadInput(f"--budget {budget!r} is not a positive amount", hint="e.g. --budget 2.50")
    return value


def _front_end(*, yes: bool, as_json: bool) -> tuple[Console, Decider, Observer | None]:
    """The terminal's console, who decides (``--yes`` or a human at the prompt) and the
    progress printer (none under ``--json``)."""
    from agentfirm.cli_output import ProgressPrinter, console
    from agentfirm.errors import BadInput
    from agentfirm.master.decisions import AutoDecider

    if not yes and not sys.stdin.isatty():
        raise BadInput(
            "approvals need a terminal and stdin is not one",
            hint="pass --yes to approve the plan and the draft non-interactively",
        )
    out = console()
    decider: Decider
    if yes:
        decider = AutoDecider()
    else:
        from agentfirm.cli_prompts import TerminalDecider

        decider = TerminalDecider(out)
    return out, decider, None if as_json else ProgressPrinter(out)


def _launch_printer(out: Console) -> Callable[[str], None]:
    def show(url: str) -> None:
        out.print(f"\n[bold]Open the task notebook in Colab:[/] {url}\n(waiting for its events…)")

    return show


def _finish(result: RunResult, *, out: Console, as_json: bool, out_file: Path | None) -> None:
    """Print a finished run (or its JSON) and exit with the documented code."""
    from agentfirm.cli_output import emit_json, print_cost_table
    from agentfirm.errors import EXIT_BUDGET, EXIT_FAILED, EXIT_REJECTED

    if out_file is not None and result.deliverable:
        out_file.write_text(Path(result.deliverable).read_text(encoding="utf-8"), encoding="utf-8")
    if as_json:
        emit_json(result.to_json())
    else:
        out.print()
        print_cost_table(out, result.cost)
        out.print(f"\nstatus: [bold]{result.status}[/]   task: {result.task_id}")
        if result.deliverable:
            out.print(f"deliverable: {result.deliverable}")
            out.print(f"task repo:   {result.repo}")
        if out_file is not None and result.deliverable:
            out.print(f"copied to:   {out_file}")
        if result.error:
            out.print(f"[red]{result.error}[/]")
    codes = {"failed": EXIT_FAILED, "budget_exhausted": EXIT_BUDGET}
    code = codes.get(
        result.status, EXIT_REJECTED if result.status in ("aborted", "rejected") else 0
    )
    if code:
        raise typer.Exit(code)


def _run_task(
    request: str,
    *,
    persona: str | None,
    budget: str | None,
    yes: bool,
    as_json: bool,
    offline: bool,
    out_file: Path | None,
    latency: str | None = None,
    runner: RunnerName | None = None,
) -> None:
    from agentfirm.cli_output import print_plan
    from agentfirm.errors import BadInput
    from agentfirm.money import usd_to_nano

    budget_usd = _parse_budget(budget)
    if out_file is not None and out_file.is_dir():
        raise BadInput(f"--out {out_file} is a directory", hint="name a file, e.g. --out report.md")
    out, decider, observer = _front_end(yes=yes, as_json=as_json)

    async def body(app_: App) -> Any:
        master = app_.master(decider, observer, runner=runner, on_launch=_launch_printer(out))
        budget_nano = usd_to_nano(
            budget_usd if budget_usd is not None else app_.settings.budget_usd
        )
        task = await master.intake(request, persona=persona)
        spec, estimate = await master.plan(task)
        if not as_json:
            out.print(f"[bold]Task {task.id}[/] — persona [cyan]{task.persona}[/]")
            if yes:  # the terminal decider shows the plan itself when it asks
                print_plan(out, spec.plan, estimate, budget_nano, persona=task.persona or "?")
        return await master.approve_and_execute(task.id, budget_nano)

    result = _with_app(_env(offline, latency), body)
    _finish(result, out=out, as_json=as_json, out_file=out_file)


@app.command()
def run(
    request: Annotated[str, typer.Argument(help="What you need, in plain words.")],
    persona: PersonaOpt = None,
    budget: BudgetOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    no_daemon: Annotated[
        bool,
        typer.Option("--no-daemon", help="Drive the task in this process (what run does today)."),
    ] = False,
    offline: OfflineOpt = False,
    out_file: OutOpt = None,
    runner: Annotated[
        str | None,
        typer.Option(
            "--runner", help="Where modules run: inproc, notebook or colab (default: settings)."
        ),
    ] = None,
) -> None:
    """Run a request end to end: classify, plan, approve, execute, review, deliver."""
    del no_daemon  # `run` drives its task here; `agentfirm daemon` hosts tasks for other fronts
    _run_task(
        request,
        persona=persona,
        budget=budget,
        yes=yes,
        as_json=as_json,
        offline=offline,
        out_file=out_file,
        runner=_runner_name(runner),
    )


def _runner_name(value: str | None) -> RunnerName | None:
    from agentfirm.errors import BadInput

    names: dict[str, RunnerName] = {"inproc": "inproc", "notebook": "notebook", "colab": "colab"}
    if value is None:
        return None
    if value not in names:
        raise BadInput(f"--runner {value!r} is not a runner", hint="use inproc, notebook or colab")
    return names[value]


@app.command()
def demo(
    as_json: JsonOpt = False,
) -> None:
    """Run a canned patent-research request offline: no keys, no network, simulated costs."""
    if not as_json:
        from agentfirm.cli_output import console

        console().print(
            "[bold]agentfirm demo[/] — a patent-research request, run offline: the offline "
            "provider simulates each model (deterministic, schema-true output) and prices every "
            "call at that model's list price.\n"
            f"[dim]request: {DEMO_REQUEST}[/]\n"
        )
    _run_task(
        DEMO_REQUEST,
        persona="patent_research",
        budget=None,
        yes=True,
        as_json=as_json,
        offline=True,
        out_file=None,
        latency=DEMO_LATENCY_MS,
    )


@app.command()
def plan(
    request: Annotated[str, typer.Argument(help="What you need, in plain words.")],
    persona: PersonaOpt = None,
    as_json: JsonOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Classify and plan a request, priced; nothing executes. The task waits for `approve`."""
    from agentfirm.cli_output import console, emit_json, print_plan
    from agentfirm.master.decisions import AutoDecider
    from agentfirm.money import nano_to_float

    async def body(app_: App) -> dict[str, Any]:
        master = app_.master(AutoDecider())
        task = await master.intake(request, persona=persona)
        spec, estimate = await master.plan(task)
        return {
            "task_id": task.id,
            "persona": task.persona,
            "modules": [m.model_dump(mode="json") for m in spec.plan.modules],
            "waves": spec.plan.waves,
            "estimate": {
                "expected_usd": nano_to_float(estimate.expected_nano),
                "worst_usd": nano_to_float(estimate.worst_nano),
            },
            "suggested_budget_usd": nano_to_float(estimate.suggested_budget_nano()),
            "_spec": spec,
            "_estimate": estimate,
        }

    data = _with_app(_env(offline), body)
    spec, estimate = data.pop("_spec"), data.pop("_estimate")
    if as_json:
        emit_json(data)
        return
    out = console()
    print_plan(
        out,
        spec.plan,
        estimate,
        estimate.suggested_budget_nano(),
        persona=data["persona"],
    )
    out.print(
        f"\ntask {data['task_id']} awaits approval: agentfirm approve {data['task_id']} "
        "[--budget USD]  (or reject it)"
    )


def _decide_pending(
    task_id: str,
    decision: str,
    *,
    notes: str = "",
    budget_usd: Decimal | None = None,
    modules: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """Answer the task's pending question (an approval row a daemon-hosted task waits on), from
    any terminal: through the daemon when it runs (it wakes the task at once), else in the store
    (the daemon picks the answer up when it starts). None when nothing is pending."""
    import getpass

    from agentfirm.daemon import process  # type: ignore[import-not-found]
    from agentfirm.master.approvals import StoreDecider

    actor = f"cli:{getpass.getuser()}"

    async def body(app_: App) -> dict[str, Any] | None:
        pending = await StoreDecider(app_.store, app_.bus).pending(task_id)
        if not pending:
            return None
        approval = pending[0]
        if decision == "revise" and approval.kind != "review":
            from agentfirm.errors import BadInput

            raise BadInput(
                f"task {task_id} waits for a {approval.kind} decision, not a draft review",
                hint=f"use agentfirm approve|reject {task_id}",
            )
        if process.running_pid(app_.settings.paths) is not None:
            from agentfirm.daemon.client import DaemonClient  # type: ignore[import-not-found]

            client = DaemonClient(process.socket_path(app_.settings.paths))
            row: dict[str, Any] = client.decide(
                approval.id,
                decision,
                actor=actor,
                notes=notes,
                budget_usd=budget_usd,
                modules=modules,
            )
            return row
        decided = await StoreDecider(app_.store, app_.bus).decide(
            approval.id, decision, actor=actor, notes=notes, budget_usd=budget_usd, modules=modules
        )
        return decided.model_dump(mode="json")

    return _with_app(_env(), body)


def _print_decided(row: dict[str, Any], *, as_json: bool) -> None:
    from agentfirm.cli_output import console, emit_json

    if as_json:
        emit_json(row)
    else:
        console().print(f"task {row['task_id']}: {row['kind']} {row['decision']}")


@app.command()
def approve(
    task_id: Annotated[str, typer.Argument(help="A task awaiting plan approval.")],
    budget: BudgetOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    offline: OfflineOpt = False,
    out_file: OutOpt = None,
) -> None:
    """Approve what a task waits for. A task the daemon hosts: its pending question (plan with
    --budget, more budget, the draft). A task planned with `agentfirm plan`: run it here,
    through review, to the end."""
    from agentfirm.money import usd_to_nano

    budget_usd = _parse_budget(budget)
    decided = _decide_pending(task_id, "approved", budget_usd=budget_usd)
    if decided is not None:
        _print_decided(decided, as_json=as_json)
        return
    out, decider, observer = _front_end(yes=yes, as_json=as_json)

    async def body(app_: App) -> RunResult:
        master = app_.master(decider, observer)
        if budget_usd is not None:
            budget_nano = usd_to_nano(budget_usd)
        else:
            task = await app_.store.get_task(task_id)
            budget_nano = master.estimate(task.spec).suggested_budget_nano() if task.spec else 0
        return await master.approve_and_execute(task_id, budget_nano)

    _finish(_with_app(_env(offline), body), out=out, as_json=as_json, out_file=out_file)


@app.command()
def reject(
    task_id: Annotated[str, typer.Argument(help="A task awaiting plan approval or budget.")],
    reason: Annotated[str, typer.Option("--reason", help="Why, for the task's log.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Reject what a task waits for (its plan or draft; a budget question: abort), or a task
    planned with `agentfirm plan`, or abort one that stopped for budget."""
    import getpass

    from agentfirm.cli_output import console, emit_json
    from agentfirm.master.transitions import reject as reject_task

    decided = _decide_pending(task_id, "rejected", notes=reason)
    if decided is not None:
        _print_decided(decided, as_json=as_json)
        return

    async def body(app_: App) -> str:
        status = await reject_task(
            app_.store,
            app_.bus,
            task_id,
            actor=f"cli:{getpass.getuser()}",
            reason=reason or "rejected on the command line",
        )
        return str(status)

    status = _with_app(_env(), body)
    if as_json:
        emit_json({"task_id": task_id, "status": status})
    else:
        console().print(f"task {task_id}: {status}")


@app.command()
def revise(
    task_id: Annotated[str, typer.Argument(help="A task whose draft awaits review.")],
    notes: Annotated[str, typer.Option("--notes", "-n", help="What to change.")],
    module: Annotated[
        list[str] | None,
        typer.Option("--module", "-m", help="Re-run this module (repeat; default: all)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a draft back with notes: the named modules and everything downstream re-run."""
    from agentfirm.errors import BadInput

    if not notes.strip():
        raise BadInput("--notes is empty", hint='say what to change, e.g. --notes "cite sources"')
    decided = _decide_pending(task_id, "revise", notes=notes, modules=tuple(module or ()))
    if decided is None:
        raise BadInput(
            f"task {task_id} has no draft waiting for review",
            hint=f"see agentfirm tasks show {task_id}",
        )
    _print_decided(decided, as_json=as_json)


@app.command()
def resume(
    task_id: Annotated[str, typer.Argument(help="A task that stopped before its end.")],
    budget: Annotated[
        str | None,
        typer.Option("--budget", "-b", help="New ceiling in USD (a task stopped for budget)."),
    ] = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    offline: OfflineOpt = False,
    out_file: OutOpt = None,
) -> None:
    """Pick a task up where it stopped (a crash, Ctrl-C, or budget) and drive it to the end.

    Completed modules are not run again. With --budget, a task waiting for budget gets that
    ceiling first."""
    from agentfirm.money import usd_to_nano

    budget_usd = _parse_budget(budget)
    out, decider, observer = _front_end(yes=yes, as_json=as_json)

    async def body(app_: App) -> RunResult:
        master = app_.master(decider, observer)
        budget_nano = usd_to_nano(budget_usd) if budget_usd is not None else None
        return await master.resume(task_id, budget_nano=budget_nano)

    _finish(_with_app(_env(offline), body), out=out, as_json=as_json, out_file=out_file)


# ---------------------------------------------------------------------------- tasks / costs
@tasks_app.command("list")
def tasks_list(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """Tasks, newest first."""
    from agentfirm.cli_output import console, emit_json, print_rows, usd
    from agentfirm.views import task_rows

    async def body(app_: App) -> list[dict[str, Any]]:
        return await task_rows(app_.store, limit=limit)

    rows = _with_app(_env(), body)
    if as_json:
        emit_json(rows)
        return
    print_rows(
        console(),
        ["task", "status", "persona", "cost", "budget", "created", "request"],
        [
            [
                r["task_id"],
                r["status"],
                r["persona"] or "—",
                usd(r["cost_usd"]),
                usd(r["budget_usd"]),
                r["created_at"][:19].replace("T", " "),
                (r["request"][:48] + "…") if len(r["request"]) > 49 else r["request"],
            ]
            for r in rows
        ],
    )


@tasks_app.command("show")
def tasks_show(
    task_id: Annotated[str, typer.Argument(help="Task id (see `agentfirm tasks list`).")],
    as_json: JsonOpt = False,
) -> None:
    """One task: status, modules, transitions."""
    from agentfirm.cli_output import console, emit_json, print_rows, usd
    from agentfirm.views import task_detail

    async def body(app_: App) -> dict[str, Any]:
        return await task_detail(app_.store, task_id)

    data = _with_app(_env(), body)
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
) -> None:
    """Stop a task for good (it moves to aborted; what it spent stays on the ledger)."""
    import getpass

    from agentfirm.cli_output import console, emit_json
    from agentfirm.daemon import process
    from agentfirm.master.transitions import cancel

    actor = f"cli:{getpass.getuser()}"
    why = reason or "cancelled on the command line"

    async def body(app_: App) -> str:
        if process.running_pid(app_.settings.paths) is not None:
            from agentfirm.daemon.client import DaemonClient

            client = DaemonClient(process.socket_path(app_.settings.paths))
            return str(client.cancel(task_id, reason=why, actor=actor)["status"])
        app_.locks.acquire(task_id)  # refuses a task another process is driving
        return str(await cancel(app_.store, app_.bus, task_id, actor=actor, reason=why))

    status = _with_app(_env(), body)
    if as_json:
        emit_json({"task_id": task_id, "status": status})
    else:
        console().print(f"task {task_id}: {status}")


@app.command()
def costs(
    task_id: Annotated[str, typer.Argument(help="Task id.")],
    as_json: JsonOpt = False,
) -> None:
    """A task's costs: by module, tier and provider, and every call on the ledger."""
    from agentfirm.cli_output import console, emit_json, print_cost_table, print_rows, usd
    from agentfirm.views import task_costs

    async def body(app_: App) -> dict[str, Any]:
        return await task_costs(app_.store, task_id)

    data = _with_app(_env(), body)
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


# ---------------------------------------------------------------------------- personas
def _personas(env: dict[str, str]) -> Any:
    from agentfirm.personas import PersonaLibrary

    settings = _context(env).settings
    return PersonaLibrary.load([settings.paths.config_dir / "personas"])


@personas_app.command("list")
def personas_list(as_json: JsonOpt = False) -> None:
    """Every persona: shipped ones and yours (config dir/personas)."""
    from agentfirm.cli_output import console, emit_json, print_rows

    library = _personas(_env())
    rows = [
        {
            "id": p.id,
            "name": p.name,
            "modules": len(p.modules),
            "keywords": p.classification_keywords,
        }
        for p in library.all()
    ]
    if as_json:
        emit_json(rows)
        return
    print_rows(
        console(),
        ["id", "name", "modules", "keywords"],
        [[r["id"], r["name"], str(r["modules"]), ", ".join(r["keywords"][:6])] for r in rows],
    )


@personas_app.command("show")
def personas_show(
    persona_id: Annotated[str, typer.Argument(help="Persona id.")], as_json: JsonOpt = False
) -> None:
    """One persona: modules, waves, checklist."""
    from agentfirm.cli_output import console, emit_json, print_rows

    persona = _personas(_env()).get(persona_id)
    if as_json:
        data = persona.model_dump(mode="json")
        data["waves"] = persona.waves()
        emit_json(data)
        return
    out = console()
    out.print(f"[bold]{persona.name}[/] ({persona.id})\n{persona.description}\n")
    for number, wave in enumerate(persona.waves(), start=1):
        out.print(f"wave {number}: " + ", ".join(wave))
    print_rows(
        out,
        ["module", "tier", "depends on", "output"],
        [[m.id, m.tier, ", ".join(m.depends_on) or "—", m.output_type] for m in persona.modules],
    )
    out.print("\nquality checklist:")
    for item in persona.quality_checklist:
        out.print(f"  - {item}")


@personas_app.command("validate")
def personas_validate(
    files: Annotated[list[Path], typer.Argument(help="Persona YAML files.")],
) -> None:
    """Validate persona files: every problem with file and line; exit 2 if any."""
    from agentfirm.cli_output import console, error
    from agentfirm.errors import PersonaError
    from agentfirm.personas import load_persona_file

    bad = False
    for path in files:
        try:
            persona = load_persona_file(path)
        except PersonaError as err:
            bad = True
            for problem in err.problems:
                error(problem)
            continue
        console().print(f"{path}: ok — {persona.id}, {len(persona.modules)} modules")
    if bad:
        raise typer.Exit(2)


@app.command()
def classify(
    request: Annotated[str, typer.Argument(help="The request to classify.")],
    as_json: JsonOpt = False,
) -> None:
    """Which persona fits a request, and why (nothing runs)."""
    from agentfirm.cli_output import console, emit_json

    result = _personas(_env()).classify(request)
    data = {
        "persona": result.persona,
        "stage": result.stage,
        "matched": result.matched,
        "scores": result.scores,
    }
    if as_json:
        emit_json(data)
        return
    out = console()
    out.print(f"persona: [bold]{result.persona or '— (ask)'}[/]  stage: {result.stage}")
    for persona, words in result.matched.items():
        out.print(f"  {persona}: {result.scores.get(persona, 0):g}  ({', '.join(words)})")


@app.command()
def providers(as_json: JsonOpt = False) -> None:
    """Each provider's health (state, error rate, latency) and the tier chains.

    Health is what the daemon has seen; without a running daemon it is this process's view
    (every provider closed, no calls yet)."""
    from agentfirm.cli_output import console, emit_json, print_rows
    from agentfirm.daemon import process

    ctx = _context(_env())
    data: dict[str, Any]
    if process.running_pid(ctx.settings.paths) is not None:
        from agentfirm.daemon.client import DaemonClient

        data = DaemonClient(process.socket_path(ctx.settings.paths)).providers()
        data["source"] = "daemon"
    else:

        async def body(app_: App) -> dict[str, Any]:
            from agentfirm.config_check import available_providers
            from agentfirm.router.chains import resolve_chains

            resolved = resolve_chains(
                app_.settings, available_providers(app_.settings, app_.secrets)
            )
            chains = {tier: [entry.label for entry in chain] for tier, chain in resolved.items()}
            try:
                rows = app_.router.health_snapshot()
                problems: list[str] = []
            except ConfigError as err:
                rows, problems = [], list(err.problems)
            return {"providers": rows, "chains": chains, "problems": problems}

        from agentfirm.errors import ConfigError

        data = _with_app(_env(), body)
        data["source"] = "local"
    if as_json:
        emit_json(data)
        return
    out = console()
    print_rows(
        out,
        ["provider", "state", "error rate", "p50 ms", "calls", "key"],
        [
            [
                str(row.get("provider")),
                str(row.get("state")),
                f"{float(row.get('error_rate') or 0):.0%}",
                "—" if row.get("p50_latency_ms") is None else str(row.get("p50_latency_ms")),
                str(row.get("calls", 0)),
                "refused" if row.get("key_refused") else "ok",
            ]
            for row in data.get("providers", [])
        ],
    )
    for tier, chain in data.get("chains", {}).items():
        out.print(f"{tier:<10} " + " → ".join(chain))
    for problem in data.get("problems", []):
        out.print(f"[yellow]{problem}[/]")
    if data["source"] == "local":
        out.print("[dim](no daemon running: health starts empty in this process)[/]")


@personas_app.command("new")
def personas_new(
    persona_id: Annotated[str, typer.Argument(help="Id and file stem, e.g. grant_proposal.")],
    name: Annotated[str | None, typer.Option("--name", help="Display name.")] = None,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to write (default: your personas dir).")
    ] = None,
) -> None:
    """Write a valid, commented starter persona to edit (never overwrites)."""
    from agentfirm.cli_output import console
    from agentfirm.errors import BadInput
    from agentfirm.persona_scaffold import scaffold_persona

    ctx = _context(_env())
    text = scaffold_persona(persona_id, name or persona_id.replace("_", " ").title())
    target_dir = directory or ctx.settings.paths.config_dir / "personas"
    target = target_dir / f"{persona_id}.yaml"
    if target.exists():
        raise BadInput(f"{target} exists already", hint="pick another id or edit that file")
    target_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    console().print(f"wrote {target} — edit it, then: agentfirm personas validate {target}")


# ---------------------------------------------------------------------------- config / secrets
@config_app.command("check")
def config_check() -> None:
    """Validate settings, tier chains and prices; exit 2 listing every problem."""
    from agentfirm.cli_output import console
    from agentfirm.config_check import check

    ctx = _context(_env())
    check(ctx.settings, ctx.secrets)
    console().print("configuration ok")


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """The effective settings (secrets masked) and where keys come from."""
    from agentfirm.cli_output import console, emit_json
    from agentfirm.settings import masked_dump

    ctx = _context(_env())
    data = masked_dump(ctx.settings)
    data["secrets"] = dict(ctx.secrets.list())
    if as_json:
        emit_json(data)
        return
    out = console()
    for key, value in data.items():
        out.print(f"{key} = {value}")


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="e.g. ANTHROPIC_API_KEY")],
) -> None:
    """Store a secret in the OS keyring (the value is read without echo)."""
    import getpass

    from agentfirm.cli_output import console

    ctx = _context(_env())
    value = getpass.getpass(f"{name}: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not value:
        raise _fail(f"no value given for {name}")
    ctx.secrets.set(name, value)
    console().print(f"{name} stored in the keyring")


@secrets_app.command("rotate")
def secrets_rotate(name: Annotated[str, typer.Argument(help="e.g. OPENAI_API_KEY")]) -> None:
    """Replace a stored secret; takes effect without a restart."""
    import getpass

    from agentfirm.cli_output import console

    ctx = _context(_env())
    value = getpass.getpass(f"new {name}: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not value:
        raise _fail(f"no value given for {name}")
    ctx.secrets.rotate(name, value)
    console().print(f"{name} rotated")


@secrets_app.command("rm")
def secrets_rm(name: Annotated[str, typer.Argument(help="Secret name.")]) -> None:
    """Delete a secret from the keyring."""
    from agentfirm.cli_output import console

    ctx = _context(_env())
    ctx.secrets.delete(name)
    console().print(f"{name} removed from the keyring")


@secrets_app.command("list")
def secrets_list(as_json: JsonOpt = False) -> None:
    """Names of the secrets that have a value and where each comes from — never values."""
    from agentfirm.cli_output import console, emit_json, print_rows

    ctx = _context(_env())
    rows = [{"name": n, "source": s} for n, s in ctx.secrets.list()]
    if as_json:
        emit_json(rows)
        return
    print_rows(console(), ["name", "source"], [[r["name"], r["source"]] for r in rows])


# ---------------------------------------------------------------------------- entry point
def main() -> None:
    """Console-script entry: map errors to exit codes in one place."""
    from agentfirm.errors import EXIT_FAILED, AgentfirmError

    try:
        app(standalone_mode=True)
    except AgentfirmError as err:
        if _debug():
            raise
        from agentfirm.cli_output import error

        error(str(err))
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # a bug: say so in one line, keep the traceback for --debug
        if _debug():
            raise
        from agentfirm.cli_output import error

        error(f"internal error: {type(err).__name__}: {err} (rerun with --debug for details)")
        sys.exit(EXIT_FAILED)
