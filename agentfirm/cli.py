"""The ``agentfirm`` command line: the root app, where every command is registered, and ``main``.

Commands are thin (parse, call the core, render through ``cli_output``) and live in one module per
concern: ``cli_run`` (run, demo, plan), ``cli_decide`` (approve, reject, revise, resume),
``cli_tasks`` (tasks, costs), ``cli_personas``, ``cli_config`` (config, providers),
``cli_secrets``, ``cli_daemon``, ``cli_db``; ``cli_context`` holds what they share. Those modules
import only typer at load time and everything else inside the commands, so ``agentfirm --help``
stays instant.

Exit codes (ARCHITECTURE.md §8): 0 done, 1 failed, 2 bad input or config, 3 budget exhausted,
4 rejected or aborted. Errors are one line on stderr; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from agentfirm import cli_config, cli_decide, cli_personas, cli_run, cli_secrets, cli_tasks
from agentfirm.cli_context import debug as _debug
from agentfirm.cli_daemon import daemon_app
from agentfirm.cli_db import db_app
from agentfirm.cli_slack import slack
from agentfirm.cli_worker import worker

app = typer.Typer(
    name="agentfirm",
    help="A consulting firm of LLM agents: plan, approve, run in parallel, review — "
    "every cent on a ledger.",
    invoke_without_command=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", help="Readable logs on stderr and full tracebacks.")
    ] = False,
) -> None:
    """With no command: the TUI on a terminal, this help otherwise (a script never gets a
    full-screen app it cannot drive)."""
    del debug  # read by cli_context.debug(): main() needs it too, outside click's context
    if ctx.invoked_subcommand is not None:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        typer.echo(ctx.get_help())
        raise typer.Exit(0)
    from agentfirm.cli_context import context, env_for
    from agentfirm.tui.app import run_tui  # type: ignore[import-not-found]

    raise typer.Exit(run_tui(context(env_for()).settings))


# Commands, in the order `agentfirm --help` lists them.
app.command()(cli_run.run)
app.command()(cli_run.demo)
app.command()(cli_run.plan)
app.command()(cli_decide.approve)
app.command()(cli_decide.reject)
app.command()(cli_decide.revise)
app.command()(cli_decide.resume)
app.command()(cli_tasks.costs)
app.command()(cli_personas.classify)
app.command()(cli_config.providers)
app.add_typer(cli_tasks.tasks_app, name="tasks")
app.add_typer(cli_personas.personas_app, name="personas")
app.add_typer(cli_config.config_app, name="config")
app.add_typer(cli_secrets.secrets_app, name="secrets")
app.add_typer(daemon_app, name="daemon")
app.add_typer(db_app, name="db")
app.command()(worker)
app.command()(slack)


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
