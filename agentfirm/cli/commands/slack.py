"""``agentfirm slack``: run the Slack front end, bridged to the daemon (started when needed).

Registered by ``cli.py``; like it, everything beyond typer is imported inside the command, so
``agentfirm --help`` never loads slack-bolt. Bad or missing configuration is one line on stderr
and exit code 2; SIGINT or SIGTERM stops the app cleanly (exit 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from agentfirm.settings import Settings
    from agentfirm.slack.config import SlackConfig


def slack(
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="socket (Socket Mode, SLACK_APP_TOKEN) or http (signed requests, "
            "SLACK_SIGNING_SECRET). Default: AGENTFIRM_SLACK_MODE, else socket.",
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help="HTTP mode: the port for POST /slack/events (AGENTFIRM_SLACK_PORT)."
        ),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Serve tasks from Slack with the offline provider.")
    ] = False,
) -> None:
    """Run the Slack app: mention it or use /agentfirm to start a task, then answer, approve
    and review from the task's thread (allowed users: AGENTFIRM_SLACK_ALLOWED_USERS)."""
    import asyncio

    from agentfirm.cli.context import context, env_for, start_daemon
    from agentfirm.cli.output import error
    from agentfirm.errors import AgentfirmError, ConfigError
    from agentfirm.slack.config import load_slack_config

    try:
        ctx = context(env_for())
        config = load_slack_config(
            ctx.settings, ctx.secrets, mode=mode, port=port, offline=offline or None
        )
        start_daemon(ctx.settings).close()
        asyncio.run(_serve(config, ctx.settings))
    except AgentfirmError as err:
        if isinstance(err, ConfigError):
            message = f"{len(err.problems)} configuration problem(s): " + "; ".join(err.problems)
        else:
            message = " ".join(str(err).split())
        error(message)
        raise typer.Exit(err.exit_code) from None


async def _serve(config: SlackConfig, settings: Settings) -> None:
    import asyncio
    import signal

    from agentfirm.cli.output import console
    from agentfirm.daemon.process import socket_path
    from agentfirm.slack.daemon_link import HttpDaemonLink
    from agentfirm.slack.server import build, serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    out = console()

    def ready(where: str) -> None:
        out.print(f"agentfirm slack: {where}; Ctrl-C stops it", soft_wrap=True)

    async with HttpDaemonLink(socket_path(settings.paths)) as daemon:
        service = build(config, daemon, state_dir=settings.paths.state_dir)
        await serve(service, stop, on_ready=ready)
