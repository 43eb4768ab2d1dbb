"""``agentfirm run``, ``demo`` and ``plan``.

``run`` goes through the daemon (started on demand): it submits the task, follows its events and
answers its questions here — on the terminal, or by ``--yes``'s policy — then prints the result.
``--no-daemon`` drives the whole task in this process instead. Either way the output, the
``--json`` document and the exit code are the same.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentfirm.cli.context import (
    AttachOpt,
    BudgetOpt,
    JsonOpt,
    NoDaemonOpt,
    OfflineOpt,
    OutOpt,
    PersonaOpt,
    RunnerOpt,
    YesOpt,
    actor,
    attachments,
    check_out_file,
    env_for,
    parse_budget,
    runner_name,
    settings_for,
    start_daemon,
    submitter,
    with_app,
)
from agentfirm.cli.interrupt import left_resumable

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from decimal import Decimal

    from rich.console import Console

    from agentfirm.app import App
    from agentfirm.cli.answers import Answerer
    from agentfirm.domain.models import Task, TaskSpec
    from agentfirm.domain.policy import RunnerName, TaskPolicy
    from agentfirm.domain.tools import ToolConsent
    from agentfirm.master.agent import MasterAgent, Observer, RunResult
    from agentfirm.master.decisions import Decider
    from agentfirm.master.estimate import Estimate
    from agentfirm.settings import Settings

DEMO_REQUEST = (
    "Assess the patentability of a battery thermal-management method that uses phase-change "
    "material pockets between cylindrical cells: search prior art, analyse novelty against the "
    "closest references, and draft independent and dependent claims."
)
DEMO_LATENCY_MS = "200-900"

NO_PERSONA = "no persona clearly matches"
"""How ``AutoDecider`` (the daemon's choice of persona) starts refusing a request."""

RequestArg = Annotated[str, typer.Argument(help="What you need, in plain words.")]


# ---------------------------------------------------------------------------- shared by both ways
def check_can_ask(*, yes: bool) -> None:
    """Without ``--yes`` someone must answer at a terminal: refused before anything is written."""
    from agentfirm.errors import BadInput

    if not yes and not sys.stdin.isatty():
        raise BadInput(
            "approvals need a terminal and stdin is not one",
            hint="pass --yes to approve the plan and the draft non-interactively",
        )


def finish(
    result: dict[str, Any], *, out: Console | None, as_json: bool, out_file: Path | None
) -> None:
    """Print a finished run (``--json``: the document ``RunResult.to_json`` makes) and exit
    with the documented code."""
    from agentfirm.cli.output import console, emit_json, plain, print_cost_table
    from agentfirm.errors import EXIT_BUDGET, EXIT_FAILED, EXIT_REJECTED

    deliverable = result.get("deliverable")
    if out_file is not None and deliverable:
        out_file.write_text(Path(deliverable).read_text(encoding="utf-8"), encoding="utf-8")
    if as_json:
        emit_json(result)
    else:
        out = out or console()
        out.print()
        print_cost_table(out, result.get("cost") or {})
        out.print(f"\nstatus: [bold]{result['status']}[/]   task: {result['task_id']}")
        if deliverable:
            out.print(f"deliverable: {plain(deliverable)}")
            out.print(f"task repo:   {plain(result.get('repo'))}")
        if out_file is not None and deliverable:
            out.print(f"copied to:   {plain(out_file)}")
        if result.get("error"):
            out.print(f"[red]{plain(result['error'])}[/]")
    status = result["status"]
    codes = {"failed": EXIT_FAILED, "budget_exhausted": EXIT_BUDGET}
    code = codes.get(status, EXIT_REJECTED if status in ("aborted", "rejected") else 0)
    if code:
        raise typer.Exit(code)


def answerer(*, yes: bool, as_json: bool, allowed_tools: Sequence[str] = ()) -> Answerer:
    """Who answers a daemon-hosted task's questions: ``--yes``'s policy (tools that may change
    things denied unless ``allowed_tools`` names them), or the human (prompts on stderr under
    ``--json``, so stdout stays one document)."""
    from agentfirm.cli.answers import AutoAnswers, TerminalAnswers
    from agentfirm.cli.output import console

    if yes:
        return AutoAnswers(None if as_json else console(), allowed_tools=allowed_tools)
    return TerminalAnswers(console(stderr=as_json), actor=actor())


# ---------------------------------------------------------------------------- in this process
def task_policy(
    settings: Settings,
    *,
    budget_usd: Decimal | None,
    runner: RunnerName | None,
    yes: bool,
    allowed_tools: Sequence[str] = (),
) -> TaskPolicy:
    """The policy of a task this terminal creates: the settings that shape it travel with it
    (to the daemon, and to whoever resumes it), so it is served the same way anywhere."""
    from agentfirm.domain.policy import TaskPolicy
    from agentfirm.money import usd_to_nano

    return TaskPolicy(
        offline=settings.offline,
        offline_latency_ms=settings.offline_latency_ms,
        runner=runner or settings.runner,
        budget_nano=usd_to_nano(budget_usd if budget_usd is not None else settings.budget_usd),
        personas_dir=str(settings.paths.config_dir / "personas"),
        auto_approve=yes,
        allowed_tools=tuple(allowed_tools),
    )


def front_end(
    *, yes: bool, as_json: bool, allowed_tools: Sequence[str] = ()
) -> tuple[Console, Decider, Observer | None]:
    """For an in-process run: the console, who decides (``--yes`` or a human at the prompt)
    and the progress printer (under ``--json``, only notices such as a refused key, on
    stderr)."""
    from agentfirm.cli.output import NoticePrinter, ProgressPrinter, console
    from agentfirm.master.decisions import AutoDecider

    check_can_ask(yes=yes)
    out = console()
    decider: Decider
    if yes:
        decider = AutoDecider(allowed_tools)
    else:
        from agentfirm.cli.prompts import TerminalDecider

        decider = TerminalDecider(out)
    observer = NoticePrinter(console(stderr=True)) if as_json else ProgressPrinter(out)
    return out, decider, observer


def _launch_printer(out: Console) -> Callable[[str], None]:
    def show(url: str) -> None:
        out.print(f"\n[bold]Open the task notebook in Colab:[/] {url}\n(waiting for its events…)")

    return show


def master_here(
    app_: App, policy: TaskPolicy, *, yes: bool, as_json: bool
) -> tuple[MasterAgent, Console]:
    """A Master in this process (``--no-daemon``) serving a task as its policy says — offline,
    latency, runner, ``--yes`` — whatever this terminal's settings: the same one a daemon
    would drive it with, deciding on this terminal unless ``yes`` or the policy says ``--yes``.
    Refuses (``BadInput``) when someone must answer and stdin is no terminal."""
    from agentfirm.cli.output import console
    from agentfirm.runs.heap import settle_heap

    out, decider, observer = front_end(
        yes=yes or policy.auto_approve, as_json=as_json, allowed_tools=policy.allowed_tools
    )
    # under --json stdout holds one document only: the launch link goes to stderr
    launch = _launch_printer(console(stderr=True) if as_json else out)
    # this process read the personas a moment ago: only the settings may differ
    view = app_.serving(policy.model_copy(update={"personas_dir": None}))
    settle_heap()  # a drive: this process now runs the task's calls
    return view.master(decider, observer, runner=policy.runner, on_launch=launch), out


async def drive_here(
    app_: App,
    task_id: str,
    *,
    yes: bool,
    as_json: bool,
    offline: bool = False,
    budget_nano: int | None = None,
    waiting_for_approval: bool = False,
) -> RunResult:
    """Drive a task that exists already in this process (``resume``, ``approve``), under its
    own policy. ``offline``: served offline from now on (written to its policy first);
    ``waiting_for_approval``: refuse a task that is not awaiting plan approval."""
    from agentfirm.errors import BadInput
    from agentfirm.master.transitions import check_not_ended

    task = await app_.store.get_task(task_id)
    if waiting_for_approval and (task.status != "awaiting_plan_approval" or task.spec is None):
        raise BadInput(
            f"task {task_id} is {task.status}, not awaiting plan approval",
            hint=f"see `agentfirm tasks show {task_id}`",
        )
    # Said before the terminal and the providers are asked for, as the daemon's path says it.
    check_not_ended(task, "resume")
    policy = task.policy
    if offline and not policy.offline:
        policy = policy.model_copy(update={"offline": True})
    master, _out = master_here(app_, policy, yes=yes, as_json=as_json)
    if policy != task.policy:
        task.policy = policy
        await app_.store.save_task(task)
    return await master.drive(task_id, budget_nano=budget_nano)


def run_here(
    request: str,
    *,
    persona: str | None,
    budget: str | None,
    yes: bool,
    as_json: bool,
    offline: bool,
    out_file: Path | None,
    files: list[Path],
    latency: str | None = None,
    runner: RunnerName | None = None,
    allowed_tools: Sequence[str] = (),
) -> None:
    """The whole task in this process (``--no-daemon``, ``demo``)."""
    from agentfirm.cli.output import console, plan_warnings, print_plan
    from agentfirm.money import nano_to_float, usd_to_nano

    budget_usd = parse_budget(budget)
    check_out_file(out_file)
    check_can_ask(yes=yes)

    async def body(app_: App) -> RunResult:
        if allowed_tools:
            from agentfirm.tools.catalog import check_allowed, servers_from_settings

            check_allowed(allowed_tools, servers_from_settings(app_.settings))
        policy = task_policy(
            app_.settings,
            budget_usd=budget_usd,
            runner=runner,
            yes=yes,
            allowed_tools=allowed_tools,
        )
        master, out = master_here(app_, policy, yes=yes, as_json=as_json)
        given = usd_to_nano(budget_usd) if budget_usd is not None else None
        task = await master.intake(
            request,
            persona=persona,
            attachments=files,
            budget_nano=given,
            policy=policy,
            on_created=created.append,  # said on a Ctrl-C while a model classifies it
        )
        if not created:
            created.append(task.id)
        if not as_json:
            out.print(f"[bold]Task {task.id}[/] — persona [cyan]{task.persona}[/]")
            if given is None:  # the intake ran under the cap, not under a budget of its own
                cap = nano_to_float(usd_to_nano(app_.settings.intake_cap_usd))
                out.print(f"[dim]intake (classify, clarify, plan) capped at ${cap:.2f}[/]")

        def shown(
            task: Task,
            spec: TaskSpec,
            estimate: Estimate,
            budget_nano: int,
            tools: Sequence[ToolConsent],
        ) -> None:
            if not yes:  # the terminal decider shows the plan itself when it asks
                return
            if not as_json:
                print_plan(
                    out, spec.plan, estimate, budget_nano, persona=task.persona or "?", tools=tools
                )
                return
            # stdout holds one document: the warnings go to stderr, before the run
            for warning in plan_warnings(
                {
                    "estimate": estimate.to_json(),
                    "budget_usd": nano_to_float(budget_nano),
                    "tools": [t.to_json() for t in tools],
                }
            ):
                console(stderr=True).print(warning, soft_wrap=True)

        return await master.drive(task.id, on_planned=shown)

    created: list[str] = []
    with left_resumable(created) as stopping:
        result = with_app(env_for(offline, latency), body, on_interrupt=stopping)
    finish(result.to_json(), out=None, as_json=as_json, out_file=out_file)


def _choose_persona(client: Any, out: Console) -> str:
    """Asked when the daemon finds no persona for the request (an in-process run asks the same
    through its terminal decider)."""
    from agentfirm.cli.prompts import pick_persona

    return pick_persona(out, [str(p["id"]) for p in client.personas()])


AllowToolOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-tool",
        help="Under --yes, let this tool run although it may change things (its name or "
        "mcp:SERVER/TOOL, or mcp:SERVER/* for all of a server's; repeatable). Others are "
        "denied.",
    ),
]


# ---------------------------------------------------------------------------- the commands
def run(
    request: RequestArg,
    persona: PersonaOpt = None,
    budget: BudgetOpt = None,
    yes: YesOpt = False,
    as_json: JsonOpt = False,
    no_daemon: NoDaemonOpt = False,
    offline: OfflineOpt = False,
    out_file: OutOpt = None,
    runner: RunnerOpt = None,
    attach: AttachOpt = None,
    allow_tool: AllowToolOpt = None,
) -> None:
    """Run a request end to end: classify, plan, approve, execute, review, deliver.

    The daemon hosts the task (it is started if need be, and keeps running); this command
    follows it and answers its questions. With --no-daemon everything runs in this process."""
    files = attachments(attach)
    runner_ = runner_name(runner)
    if no_daemon:
        run_here(
            request,
            persona=persona,
            budget=budget,
            yes=yes,
            as_json=as_json,
            offline=offline,
            out_file=out_file,
            files=files,
            runner=runner_,
            allowed_tools=allow_tool or (),
        )
        return
    from functools import partial

    from agentfirm.cli.follow import drive
    from agentfirm.cli.output import console
    from agentfirm.errors import BadInput

    budget_usd = parse_budget(budget)
    check_out_file(out_file)
    check_can_ask(yes=yes)
    settings = settings_for(env_for(offline))
    out = None if as_json else console()
    # this terminal's settings, not the daemon's: the same task as with --no-daemon
    policy = task_policy(
        settings, budget_usd=budget_usd, runner=runner_, yes=yes, allowed_tools=allow_tool or ()
    )
    with start_daemon(settings) as client:
        submit = partial(
            client.submit,
            request,
            budget_usd=budget_usd if budget_usd is not None else settings.budget_usd,
            offline=policy.offline,
            attachments=files,
            runner=policy.runner,
            actor=submitter(),
            offline_latency_ms=policy.offline_latency_ms,
            personas_dir=policy.personas_dir,
            yes=policy.auto_approve,
            allowed_tools=policy.allowed_tools,
        )
        try:
            created = submit(persona=persona)
        except BadInput as err:
            if yes or persona or not str(err).startswith(NO_PERSONA):
                raise
            created = submit(persona=_choose_persona(client, console(stderr=as_json)))
        if out is not None:
            out.print(f"[bold]Task {created['task_id']}[/] — persona [cyan]{created['persona']}[/]")
        result = drive(
            client,
            created["task_id"],
            after_seq=0,
            out=out,
            answers=answerer(yes=yes, as_json=as_json, allowed_tools=allow_tool or ()),
        )
    finish(result, out=out, as_json=as_json, out_file=out_file)


def demo(as_json: JsonOpt = False) -> None:
    """Run a canned patent-research request offline: no keys, no network, simulated costs."""
    if not as_json:
        from agentfirm.cli.output import console

        console().print(
            "[bold]agentfirm demo[/] — a patent-research request, run offline: the offline "
            "provider simulates each model (deterministic, schema-true output) and prices every "
            "call at that model's list price.\n"
            f"[dim]request: {DEMO_REQUEST}[/]\n"
        )
    run_here(
        DEMO_REQUEST,
        persona="patent_research",
        budget=None,
        yes=True,
        as_json=as_json,
        offline=True,
        out_file=None,
        files=[],
        latency=DEMO_LATENCY_MS,
    )


def plan(
    request: RequestArg,
    persona: PersonaOpt = None,
    as_json: JsonOpt = False,
    offline: OfflineOpt = False,
    attach: AttachOpt = None,
) -> None:
    """Classify and plan a request, priced; nothing executes. The task waits for `approve`."""
    from rich.markup import escape

    from agentfirm.cli.output import console, emit_json, print_plan
    from agentfirm.master.decisions import AutoDecider
    from agentfirm.money import nano_to_float

    files = attachments(attach)

    async def body(app_: App) -> dict[str, Any]:
        master = app_.master(AutoDecider())
        task = await master.intake(request, persona=persona, attachments=files)
        spec, estimate = await master.plan(task)
        unavailable = await master.unavailable_tools(
            name for module in spec.plan.modules for name in module.tools
        )
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
            "unavailable_tools": unavailable,
            "_spec": spec,
            "_estimate": estimate,
        }

    data = with_app(env_for(offline), body)
    spec, estimate = data.pop("_spec"), data.pop("_estimate")
    if as_json:
        emit_json(data)
        return
    out = console()
    for reason in data["unavailable_tools"]:
        out.print(f"[yellow]⚠ a tool this plan needs is unavailable:[/] {escape(reason)}")
    if data["unavailable_tools"]:
        out.print(
            "  approving it stops before anything is spent until it is fixed (agentfirm tools list)"
        )
    print_plan(out, spec.plan, estimate, estimate.suggested_budget_nano(), persona=data["persona"])
    out.print(
        f"\ntask {data['task_id']} awaits approval: agentfirm approve {data['task_id']} "
        "[--budget USD]  (or reject it)"
    )
