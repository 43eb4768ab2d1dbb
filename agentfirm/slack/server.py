"""Running the Slack app: the Web API client (pointed at ``AGENTFIRM_SLACK_API_URL`` when set),
the bolt ``AsyncApp`` with the bridge's listeners, and one receiver — Socket Mode (the app
token) or HTTP (signed requests on ``POST /slack/events``).

Bolt's own request verification answers 401 to a bad or stale signature (more than five
minutes off); the bridge's replay guard drops the same request sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import structlog

from agentfirm.errors import BadInput
from agentfirm.slack.access import AccessPolicy
from agentfirm.slack.bridge import SlackBridge
from agentfirm.slack.config import EVENTS_PATH, SlackConfig
from agentfirm.slack.daemon_link import DaemonLink
from agentfirm.slack.handlers import register
from agentfirm.slack.replay import ReplayGuard
from agentfirm.slack.threads import FILE_NAME, ThreadBook
from agentfirm.slack.throttle import Clock

if TYPE_CHECKING:
    from aiohttp import web
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger(__name__)

# Bolt and slack-sdk log through stdlib logging under these names; agentfirm's log setup keeps
# library records at WARNING and above and redacts them.
_BOLT_LOGGER = "agentfirm.slack.bolt"


def web_client(config: SlackConfig) -> AsyncWebClient:
    """The Web API client: the bot token, the configured base URL, and retries on rate limits
    (``chat.update`` is rate limited per channel)."""
    from slack_sdk.http_retry.builtin_async_handlers import (
        AsyncConnectionErrorRetryHandler,
        AsyncRateLimitErrorRetryHandler,
    )
    from slack_sdk.web.async_client import AsyncWebClient

    return AsyncWebClient(
        token=config.bot_token,
        base_url=config.api_url,
        timeout=30,
        logger=logging.getLogger(_BOLT_LOGGER + ".web"),
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
        ],
    )


def bolt_app(
    config: SlackConfig, client: AsyncWebClient, bridge: SlackBridge, guard: ReplayGuard
) -> AsyncApp:
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(
        client=client,
        signing_secret=config.signing_secret if config.mode == "http" else None,
        request_verification_enabled=config.mode == "http",
        logger=logging.getLogger(_BOLT_LOGGER),
        name="agentfirm",
    )
    register(app, bridge, guard)
    return app


class Receiver(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def describe(self) -> str: ...


def _timestamp_guard() -> Callable[..., Awaitable[web.StreamResponse]]:
    """aiohttp middleware: 401 for an ``X-Slack-Request-Timestamp`` that is not a number. Bolt's
    verification fails on one with a 500, though it is only a badly signed request."""
    from aiohttp import web

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        stamp = request.headers.get("X-Slack-Request-Timestamp")
        if stamp is not None and not (stamp.isascii() and stamp.isdigit() and len(stamp) < 20):
            return web.json_response({"error": "invalid request timestamp"}, status=401)
        return await handler(request)

    return guard


class HttpReceiver:
    """Signed HTTP requests on ``host:port`` at ``POST /slack/events`` (aiohttp, which bolt's
    async server runs on). Port 0 binds a free port; ``port`` is the one bound."""

    def __init__(self, app: AsyncApp, *, host: str, port: int, path: str = EVENTS_PATH) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.path = path
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        from aiohttp import web
        from slack_bolt.app.async_server import AsyncSlackAppServer

        server = AsyncSlackAppServer(port=self.port, path=self.path, app=self.app, host=self.host)
        server.web_app.middlewares.append(_timestamp_guard())
        self._runner = web.AppRunner(server.web_app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as err:
            await self._runner.cleanup()
            self._runner = None
            raise BadInput(
                f"cannot listen on {self.host}:{self.port}: {err.strerror or err}",
                hint="choose another --port (AGENTFIRM_SLACK_PORT)",
            ) from None
        bound = self._runner.addresses[0]
        self.port = int(bound[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def describe(self) -> str:
        return f"listening on http://{self.host}:{self.port}{self.path} (HTTP mode)"


class SocketReceiver:
    """Socket Mode: a WebSocket Slack opens for the app token (no public endpoint needed)."""

    def __init__(self, app: AsyncApp, *, app_token: str, client: AsyncWebClient) -> None:
        self.app = app
        self._app_token = app_token
        self._client = client
        self._handler: AsyncSocketModeHandler | None = None

    async def start(self) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
        from slack_sdk.errors import SlackApiError

        # The handler retries a refused token forever; a bad one should stop the start instead.
        try:
            await self._client.apps_connections_open(app_token=self._app_token)
        except SlackApiError as err:
            raise BadInput(
                f"Slack refused SLACK_APP_TOKEN ({err.response.get('error')})",
                hint="Socket Mode needs an app-level token (xapp-…) with connections:write",
            ) from None
        self._handler = AsyncSocketModeHandler(
            self.app, self._app_token, web_client=self._client, logger=self.app.logger
        )
        await self._handler.connect_async()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        if self._handler is not None:
            await self._handler.close_async()  # type: ignore[no-untyped-call]

    def describe(self) -> str:
        return "connected to Slack (Socket Mode)"


@dataclass
class SlackService:
    """Everything ``agentfirm slack`` runs, built by ``build``; ``start``/``stop`` around it."""

    config: SlackConfig
    client: AsyncWebClient
    bridge: SlackBridge
    app: AsyncApp
    receiver: Receiver

    async def check_token(self) -> str:
        """``auth.test`` with the bot token: the bot's user id. Raises ``BadInput`` when Slack
        refuses the token or cannot be reached (the message never carries the token)."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            response = await self.client.auth_test()
        except SlackApiError as err:
            raise BadInput(
                f"Slack refused SLACK_BOT_TOKEN ({err.response.get('error')})",
                hint="check the token with `agentfirm secrets set SLACK_BOT_TOKEN`",
            ) from None
        except (SlackClientError, OSError, TimeoutError) as err:
            raise BadInput(
                f"cannot reach the Slack Web API at {self.config.api_url} ({type(err).__name__})",
                hint="check the network or AGENTFIRM_SLACK_API_URL",
            ) from None
        return str(response.get("user_id") or "")

    async def start(self) -> None:
        await self.check_token()
        resumed = await self.bridge.start()
        await self.receiver.start()
        log.info("slack.started", mode=self.config.mode, resumed=len(resumed))

    async def stop(self) -> None:
        await self.receiver.stop()
        await self.bridge.stop()
        log.info("slack.stopped")


def build(
    config: SlackConfig,
    daemon: DaemonLink,
    *,
    state_dir: Path | None = None,
    clock: Clock | None = None,
    edit_interval: float = 1.0,
) -> SlackService:
    """Wire a ``SlackService``; ``state_dir`` holds the thread book (None: memory only)."""
    client = web_client(config)
    bridge = SlackBridge(
        client,
        daemon,
        AccessPolicy.of(config.allowed_users, config.allowed_channels),
        book=ThreadBook(state_dir / FILE_NAME if state_dir is not None else None),
        clock=clock,
        offline=config.offline,
        edit_interval=edit_interval,
    )
    app = bolt_app(config, client, bridge, ReplayGuard())
    receiver: Receiver
    if config.mode == "http":
        receiver = HttpReceiver(app, host=config.host, port=config.port)
    else:
        assert config.app_token is not None  # load_slack_config requires it
        receiver = SocketReceiver(app, app_token=config.app_token, client=client)
    return SlackService(config, client, bridge, app, receiver)


async def serve(
    service: SlackService, stop: asyncio.Event, *, on_ready: Callable[[str], None]
) -> None:
    """Start ``service``, report with ``on_ready``, run until ``stop`` is set, then stop."""
    try:
        await service.start()
        on_ready(service.receiver.describe())
        await stop.wait()
    finally:
        await service.stop()
