"""The ``agentfirm`` command line: the root app, where every command is registered, and ``main``.

Commands are thin (parse, call the core, render through ``cli.output``) and live in one module per
group under ``cli/commands/``: ``run`` (run, demo, plan), ``decide`` (approve, reject, revise,
resume), ``tasks`` (tasks, costs), ``personas``, ``config`` (config, providers), ``secrets``,
``daemon``, ``db``, ``slack``, ``worker``; ``cli.context`` holds what they share. A command
module is imported only when one of its commands runs (``cli.lazy``), and imports only typer at
load time, everything else inside the commands; typer's conversion of plain values skips
pydantic (``cli.coercion``). So a command pays for what it uses, and ``--help`` stays instant.

Exit codes (ARCHITECTURE.md §8): 0 done, 1 failed, 2 bad input or config, 3 budget exhausted,
4 rejected or aborted. Errors are one line on stderr; ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Annotated, ClassVar

import typer

from agentfirm.cli import coercion
from agentfirm.cli.context import debug as _debug
from agentfirm.cli.lazy import LazyGroup, Target

coercion.install()


def _at(module: str, attribute: str) -> Target:
    return (f"agentfirm.cli.commands.{module}", attribute)


class _Commands(LazyGroup):
    """Every command, in the order `agentfirm --help` lists them: a command module is imported
    when one of its commands is named (or for ``--help``), never for another's."""

    LAZY: ClassVar[Mapping[str, Target]] = {
        "run": _at("run", "run"),
        "demo": _at("run", "demo"),
        "plan": _at("run", "plan"),
        "approve": _at("decide", "approve"),
        "reject": _at("decide", "reject"),
        "revise": _at("decide", "revise"),
        "resume": _at("decide", "resume"),
        "costs": _at("tasks", "costs"),
        "classify": _at("personas", "classify"),
        "providers": _at("config", "providers"),
        "worker": _at("worker", "worker"),
        "slack": _at("slack", "slack"),
        "tasks": _at("tasks", "tasks_app"),
        "personas": _at("personas", "personas_app"),
        "config": _at("config", "config_app"),
        "tools": _at("tools", "tools_app"),
        "secrets": _at("secrets", "secrets_app"),
        "daemon": _at("daemon", "daemon_app"),
        "db": _at("db", "db_app"),
    }


app = typer.Typer(
    name="agentfirm",
    cls=_Commands,
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
    from agentfirm.cli.context import context, env_for
    from agentfirm.tui.app import run_tui

    raise typer.Exit(run_tui(context(env_for()).settings))


def main() -> None:
    """Console-script entry: map errors to exit codes in one place. Every error is one line on
    stderr (``agentfirm: error: what (how to fix)``); under ``--json`` stdout also gets one
    document, ``{"error": message, "exit_code": code}``, so a script always parses one JSON
    document whatever happened."""
    # typer vendors click (typer._click): its usage errors are the ones raised here
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    from agentfirm.cli.output import fail_with
    from agentfirm.errors import EXIT_BAD_INPUT, EXIT_FAILED, AgentfirmError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as err:  # a group named alone: its help, as before
        err.show()
        sys.exit(EXIT_BAD_INPUT)
    except typer.TyperException as err:  # a usage error: one line, and where help is
        ctx = err.ctx if isinstance(err, UsageError) else None
        command = ctx.command_path if ctx is not None else "agentfirm"
        sys.exit(fail_with(f"{err.format_message()} (see: {command} --help)", EXIT_BAD_INPUT))
    except typer.Abort:
        sys.exit(fail_with("aborted", EXIT_FAILED))
    except AgentfirmError as err:
        if _debug():
            raise
        sys.exit(fail_with(str(err), err.exit_code))
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as err:  # a bug: say so in one line, keep the traceback for --debug
        if _debug():
            raise
        from agentfirm.errors import disk_full

        full = disk_full(err)  # a write that no layer named (a log, a git commit)
        if full is not None:
            sys.exit(fail_with(str(full), full.exit_code))
        sys.exit(
            fail_with(
                f"internal error: {type(err).__name__}: {err} (rerun with --debug for details)",
                EXIT_FAILED,
            )
        )
    sys.exit(code if isinstance(code, int) else 0)
