"""The Web API calls the bridge makes, each one logged (method and Slack's error code, never the
token) and never raised: a refused edit or a network blip must not stop a task's thread."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import structlog

from agentfirm.slack.prompts import Message

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger(__name__)


class SlackOut:
    """Posts, edits, ephemeral replies and modals through ``client``."""

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def _call(self, method: str, call: Coroutine[Any, Any, Any]) -> Any:
        from aiohttp import ClientError
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            return await call
        except SlackApiError as err:
            log.warning("slack.api_error", method=method, error=str(err.response.get("error")))
        except (SlackClientError, ClientError, OSError, TimeoutError) as err:
            log.warning("slack.api_unreachable", method=method, error=type(err).__name__)
        return None

    async def post(self, channel: str, thread_ts: str | None, message: Message) -> str | None:
        """Post ``message`` (in ``thread_ts``'s thread); its ts, or None when it failed."""
        response = await self._call(
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts, text=message.text, blocks=message.blocks
            ),
        )
        return None if response is None else str(response["ts"])

    async def update(self, channel: str, ts: str, message: Message) -> None:
        await self._call(
            "chat.update",
            self.client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            ),
        )

    async def edit(self, channel: str, ts: str, message: Message) -> None:
        """``update`` that raises, for callers that handle failures themselves (the progress
        coalescer logs them and carries on with the next state)."""
        await self.client.chat_update(
            channel=channel, ts=ts, text=message.text, blocks=message.blocks
        )

    async def ephemeral(
        self, channel: str, user: str, text: str, thread_ts: str | None = None
    ) -> None:
        """A reply only ``user`` sees."""
        await self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts
            ),
        )

    async def open_view(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._call("views.open", self.client.views_open(trigger_id=trigger_id, view=view))
