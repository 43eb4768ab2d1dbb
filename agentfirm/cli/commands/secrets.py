"""``secrets set|rotate|rm|list``: provider keys and tokens in the OS keyring (never printed)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from agentfirm.cli.context import JsonOpt, context, env_for, fail

secrets_app = typer.Typer(help="Provider keys and tokens in the OS keyring.", no_args_is_help=True)


@secrets_app.command("set")
def secrets_set(
    name: Annotated[str, typer.Argument(help="e.g. ANTHROPIC_API_KEY")],
) -> None:
    """Store a secret in the OS keyring (the value is read without echo)."""
    import getpass

    from agentfirm.cli.output import console

    ctx = context(env_for())
    value = getpass.getpass(f"{name}: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not value:
        raise fail(_no_value(name, "set"))
    ctx.secrets.set(name, value)
    console().print(f"{name} stored in the keyring")


@secrets_app.command("rotate")
def secrets_rotate(name: Annotated[str, typer.Argument(help="e.g. OPENAI_API_KEY")]) -> None:
    """Replace a stored secret; takes effect without a restart."""
    import getpass

    from agentfirm.cli.output import console

    ctx = context(env_for())
    value = getpass.getpass(f"new {name}: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    if not value:
        raise fail(_no_value(name, "rotate"))
    ctx.secrets.rotate(name, value)
    console().print(f"{name} rotated")


@secrets_app.command("rm")
def secrets_rm(name: Annotated[str, typer.Argument(help="Secret name.")]) -> None:
    """Delete a secret from the keyring."""
    from agentfirm.cli.output import console

    ctx = context(env_for())
    ctx.secrets.delete(name)
    console().print(f"{name} removed from the keyring")


@secrets_app.command("list")
def secrets_list(as_json: JsonOpt = False) -> None:
    """Names of the secrets that have a value and where each comes from — never values."""
    from agentfirm.cli.output import console, emit_json, print_rows

    ctx = context(env_for())
    rows = [{"name": n, "source": s} for n, s in ctx.secrets.list()]
    if as_json:
        emit_json(rows)
        return
    print_rows(console(), ["name", "source"], [[r["name"], r["source"]] for r in rows])


def _no_value(name: str, verb: str) -> str:
    return (
        f"no value given for {name} (type it at the prompt, or pipe it on stdin: "
        f'printf %s "$VALUE" | agentfirm secrets {verb} {name})'
    )
