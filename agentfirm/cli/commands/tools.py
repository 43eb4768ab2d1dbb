"""``tools list``: every tool a module may be given, where it comes from and whether it answers
(each MCP server of ``mcp.json`` is started and asked for its tools)."""

from __future__ import annotations

import typer

from agentfirm.cli.context import JsonOpt, env_for, settings_for

tools_app = typer.Typer(help="The tools modules may use.", no_args_is_help=True)


@tools_app.command("list")
def tools_list(as_json: JsonOpt = False) -> None:
    """Every tool: builtins and each MCP server's tools; a server that cannot be used is one
    line with the reason (``config check`` exits 2 for it)."""
    import asyncio

    from rich.markup import escape

    from agentfirm.cli.output import console, emit_json, print_rows
    from agentfirm.tools.catalog import catalog_from_settings

    rows = asyncio.run(catalog_from_settings(settings_for(env_for())).probe())
    if as_json:
        emit_json([row.as_json() for row in rows])
    else:
        out = console()
        print_rows(
            out,
            ["tool", "source", "from", "changes things", "status"],
            [
                [
                    row.name,
                    row.source,
                    row.origin,
                    "yes" if row.side_effects else "no",
                    "ok" if row.ok else f"[red]{escape(row.reason)}[/]",
                ]
                for row in rows
            ],
        )
