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

from agentfirm.cli_context import (
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

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from agentfirm.app import App
    from agentfirm.cli_answers import Answerer
    from agentfirm.handoff.runners import RunnerName
    from agentfirm.master.agent import Observer
    from agentfirm.master.decisions import Decider

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
    from agentfirm.cli_output import console, emit_json, print_cost_table
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
            out.print(f"deliverable: {deliverable}")
            out.print(f"task repo:   {result.get('repo')}")
        if out_file is not None and deliverable:
            out.print(f"copied to:   {out_file}")
        if result.get("error"):
            out.print(f"[red]{result['error']}[/]")
    status = result["status"]
    codes = {"failed": EXIT_FAILED, "budget_exhausted": EXIT_BUDGET}
    code = codes.get(status, EXIT_REJECTED if status in ("aborted", "rejected") else 0)
    if code:
        raise typer.Exit(code)


def answerer(*, yes: bool, as_json: bool) -> Answerer:
    """Who answers a daemon-hosted task's questions: ``--yes``'s policy, or the human (prompts
    on stderr under ``--json``, so stdout stays one document)."""
    from agentfirm.cli_answers import AutoAnswers, TerminalAnswers
    from agentfirm.cli_output import console

    if yes:
        return AutoAnswers(None if as_json else console())
    return TerminalAnswers(console(stderr=as_json), actor=actor())


# ---------------------------------------------------------------------------- in this process
def front_end(*, yes: bool, as_json: bool) -> tuple[Console, Decider, Observer | None]:
    """For an in-process run: the console, who decides (``--yes`` or a human at the prompt)
    and the progress printer (none under ``--json``)."""
    from agentfirm.cli_output import ProgressPrinter, console
    from agentfirm.master.decisions import AutoDecider

    check_can_ask(yes=yes)
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
) -> None:
    """The whole task in this process (``--no-daemon``, ``demo``)."""
    from agentfirm.cli_output import console, print_plan
    from agentfirm.money import usd_to_nano

    budget_usd = parse_budget(budget)
    check_out_file(out_file)
    out, decider, observer = front_end(yes=yes, as_json=as_json)

    async def body(app_: App) -> Any:
        # under --json stdout holds one document only: the launch link goes to stderr
        launch = _launch_printer(console(stderr=True) if as_json else out)
        master = app_.master(decider, observer, runner=runner, on_launch=launch)
        budget_nano = usd_to_nano(
            budget_usd if budget_usd is not None else app_.settings.budget_usd
        )
        task = await master.intake(request, persona=persona, attachments=files)
        spec, estimate = await master.plan(task)
        if not as_json:
            out.print(f"[bold]Task {task.id}[/] — persona [cyan]{task.persona}[/]")
            if yes:  # the terminal decider shows the plan itself when it asks
                print_plan(out, spec.plan, estimate, budget_nano, persona=task.persona or "?")
        return await master.approve_and_execute(task.id, budget_nano)

    result = with_app(env_for(offline, latency), body)
    finish(result.to_json(), out=out, as_json=as_json, out_file=out_file)


def _choose_persona(client: Any, out: Console) -> str:
    """Asked when the daemon finds no persona for the request (an in-process run asks the same
    through its terminal decider)."""
    ids = [str(p["id"]) for p in client.personas()]
    out.print("\nNo persona clearly matches the request. Which one fits?")
    for number, persona in enumerate(ids, start=1):
        out.print(f"  {number}. {persona}")
    while True:
        answer = out.input("persona [1]: ").strip() or "1"
        if answer.isdigit() and 1 <= int(answer) <= len(ids):
            return ids[int(answer) - 1]
        if answer in ids:
            return answer
        out.print(f"  type a number from 1 to {len(ids)}")


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
        )
        return
    from functools import partial

    from agentfirm.cli_follow import drive
    from agentfirm.cli_output import console
    from agentfirm.errors import BadInput

    budget_usd = parse_budget(budget)
    check_out_file(out_file)
    check_can_ask(yes=yes)
    settings = settings_for(env_for(offline))
    out = None if as_json else console()
    with start_daemon(settings) as client:
        submit = partial(
            client.submit,
            request,
            # this terminal's settings, not the daemon's: the same task as with --no-daemon
            budget_usd=budget_usd if budget_usd is not None else settings.budget_usd,
            offline=settings.offline,
            attachments=files,
            runner=runner_,
            actor=submitter(),
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
            answers=answerer(yes=yes, as_json=as_json),
        )
    finish(result, out=out, as_json=as_json, out_file=out_file)


def demo(as_json: JsonOpt = False) -> None:
    """Run a canned patent-research request offline: no keys, no network, simulated costs."""
    if not as_json:
        from agentfirm.cli_output import console

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
    from agentfirm.cli_output import console, emit_json, print_plan
    from agentfirm.master.decisions import AutoDecider
    from agentfirm.money import nano_to_float

    files = attachments(attach)

    async def body(app_: App) -> dict[str, Any]:
        master = app_.master(AutoDecider())
        task = await master.intake(request, persona=persona, attachments=files)
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

    data = with_app(env_for(offline), body)
    spec, estimate = data.pop("_spec"), data.pop("_estimate")
    if as_json:
        emit_json(data)
        return
    out = console()
    print_plan(out, spec.plan, estimate, estimate.suggested_budget_nano(), persona=data["persona"])
    out.print(
        f"\ntask {data['task_id']} awaits approval: agentfirm approve {data['task_id']} "
        "[--budget USD]  (or reject it)"
    )
