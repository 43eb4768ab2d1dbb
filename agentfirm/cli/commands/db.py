"""``agentfirm db migrate|status``: the system of record's schema, for SQLite and Postgres."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from agentfirm.cli.context import run_async

db_app = typer.Typer(help="The database's schema: migrate and status.", no_args_is_help=True)


def _url() -> str:
    """The configured database; logging set up first so nothing but the answer hits stdout."""
    from agentfirm.cli.context import context

    settings = context(dict(os.environ)).settings
    return settings.database_url or f"sqlite:///{settings.paths.db_path}"


@db_app.command("migrate")
def migrate(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Apply pending migrations (safe while agentfirm runs elsewhere)."""
    from agentfirm.cli.output import console, emit_json
    from agentfirm.store.db_admin import migrate as run_migrate

    applied = run_async(run_migrate(_url()))
    if as_json:
        emit_json({"applied": applied})
        return
    out = console()
    out.print(
        f"applied migrations {', '.join(map(str, applied))}" if applied else "already up to date"
    )


@db_app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")] = False,
) -> None:
    """Backend, schema version and pending migrations (the URL's password masked)."""
    from agentfirm.cli.output import console, emit_json, print_pairs
    from agentfirm.store.db_admin import status as read_status

    data: dict[str, Any] = run_async(read_status(_url()))
    if as_json:
        emit_json(data)
        return
    print_pairs(
        console(),
        {**data, "applied": _names(data.get("applied")), "pending": _names(data.get("pending"))},
    )


def _names(migrations: object) -> list[str]:
    """Migrations as ``N name`` (the status lists them as ``{"version", "name"}``)."""
    if not isinstance(migrations, list):
        return []
    return [f"{m['version']} {m['name']}" if isinstance(m, dict) else str(m) for m in migrations]
