"""``config check|show`` and ``providers``: the effective configuration and what the providers can
serve."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from agentfirm.cli.context import JsonOpt, context, env_for, running_daemon, settings_for, with_app

if TYPE_CHECKING:
    from agentfirm.app import App

config_app = typer.Typer(help="Check and show the effective configuration.", no_args_is_help=True)


def providers(as_json: JsonOpt = False) -> None:
    """Each provider's health (state, error rate, latency) and the tier chains.

    Health is what the daemon has seen; without a running daemon it is this process's view
    (every provider closed, no calls yet)."""
    from agentfirm.cli.output import console, emit_json, plain, print_rows

    env = env_for()
    data: dict[str, Any]
    client = running_daemon(settings_for(env))
    if client is not None:
        with client:
            data = client.providers()
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

        data = with_app(env, body)
        data["source"] = "local"
    if as_json:
        emit_json(data)
        return
    out = console()
    rows = data.get("providers", [])
    if rows:
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
                for row in rows
            ],
        )
    else:  # the problems below say what to set
        out.print("no provider can serve a call", markup=False)
    for tier, chain in data.get("chains", {}).items():
        out.print(f"{tier:<10} " + (" → ".join(chain) or "— (none)"), markup=False)
    for problem in data.get("problems", []):
        out.print(f"[yellow]{plain(problem)}[/]")
    if data["source"] == "local":
        out.print("[dim](no daemon running: health starts empty in this process)[/]")


@config_app.command("check")
def config_check() -> None:
    """Validate settings, tier chains, prices and the MCP servers of mcp.json (each is started
    and asked for its tools); exit 2 listing every problem."""
    import asyncio

    from agentfirm.cli.output import console
    from agentfirm.config_check import check
    from agentfirm.errors import ConfigError
    from agentfirm.tools.catalog import catalog_from_settings

    ctx = context(env_for())
    problems: list[str] = []
    try:
        check(ctx.settings, ctx.secrets)
    except ConfigError as err:
        problems += err.problems
    try:
        rows = asyncio.run(catalog_from_settings(ctx.settings).probe())
    except ConfigError as err:
        problems += err.problems
    else:
        problems += [row.reason for row in rows if not row.ok]
    if problems:
        raise ConfigError(problems)
    console().print("configuration ok")


@config_app.command("show")
def config_show(as_json: JsonOpt = False) -> None:
    """The effective settings (secrets masked) and where keys come from."""
    from agentfirm.cli.output import console, emit_json, print_pairs
    from agentfirm.settings import masked_dump

    ctx = context(env_for())
    data = masked_dump(ctx.settings)
    data["secrets"] = dict(ctx.secrets.list())
    if as_json:
        emit_json(data)
        return
    print_pairs(console(), data)
