"""The slack-bolt listeners: each acks at once (Slack wants an answer within 3 seconds), pulls
what it needs out of the payload and hands it to the bridge to run in the background. A global
middleware drops replayed requests before any listener sees them."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from agentfirm.errors import BadInput
from agentfirm.slack.bridge import SlackBridge
from agentfirm.slack.inputs import input_value, parse_usd
from agentfirm.slack.prompts import (
    ACTION_PATTERN,
    BUDGET_BLOCK,
    BUDGET_INPUT,
    BUDGET_MODAL,
    MODULES_BLOCK,
    MODULES_INPUT,
    NOTES_BLOCK,
    NOTES_INPUT,
    REVISE_MODAL,
)
from agentfirm.slack.replay import ReplayGuard, request_keys

if TYPE_CHECKING:
    from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
    from slack_bolt.request.async_request import AsyncBoltRequest
    from slack_bolt.response import BoltResponse

log = structlog.get_logger(__name__)

COMMAND = "/agentfirm"


def register(app: AsyncApp, bridge: SlackBridge, guard: ReplayGuard) -> None:
    """Wire ``bridge`` to ``app``'s events, command, buttons and modals."""
    from slack_bolt.response import BoltResponse

    async def drop_replays(
        req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse:
        if not guard.first_time(request_keys(req.body, req.headers)):
            log.info("slack.replay_dropped")
            return BoltResponse(status=200, body="")
        await next()
        return resp

    async def on_mention(event: Mapping[str, Any], context: AsyncBoltContext) -> None:
        bridge.spawn(
            bridge.request(
                user=str(event.get("user") or ""),
                channel=str(event.get("channel") or ""),
                text=str(event.get("text") or ""),
                ts=event.get("ts"),
                thread_ts=event.get("thread_ts"),
                bot_user_id=context.bot_user_id,
            )
        )

    async def on_message(event: Mapping[str, Any], context: AsyncBoltContext) -> None:
        text = str(event.get("text") or "")
        mentioned = bool(context.bot_user_id) and f"<@{context.bot_user_id}>" in text
        # Edits, joins and bots are not answers; a mention arrives as app_mention too.
        if event.get("subtype") or event.get("bot_id") or not event.get("thread_ts") or mentioned:
            return
        bridge.spawn(
            bridge.reply(
                user=str(event.get("user") or ""),
                channel=str(event.get("channel") or ""),
                thread_ts=event.get("thread_ts"),
                text=text,
            )
        )

    async def on_command(ack: AsyncAck, command: Mapping[str, Any]) -> None:
        await ack()
        bridge.spawn(
            bridge.request(
                user=str(command.get("user_id") or ""),
                channel=str(command.get("channel_id") or ""),
                text=str(command.get("text") or ""),
            )
        )

    async def on_action(ack: AsyncAck, body: Mapping[str, Any]) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        message = body.get("message") or {}
        bridge.spawn(
            bridge.act(
                user=str((body.get("user") or {}).get("id") or ""),
                channel=str((body.get("channel") or {}).get("id") or ""),
                action_id=str(action.get("action_id") or ""),
                approval_id=str(action.get("value") or ""),
                values=(body.get("state") or {}).get("values") or {},
                trigger_id=body.get("trigger_id"),
                thread_ts=message.get("thread_ts") or message.get("ts"),
            )
        )

    async def on_budget_modal(ack: AsyncAck, body: Mapping[str, Any]) -> None:
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        try:
            budget = parse_usd(input_value(values, BUDGET_BLOCK, BUDGET_INPUT))
            if budget is None:
                raise BadInput("enter the budget ceiling in USD")
        except BadInput as err:
            await ack(response_action="errors", errors={BUDGET_BLOCK: str(err)})
            return
        await ack()
        bridge.spawn(
            bridge.submitted(
                user=str((body.get("user") or {}).get("id") or ""),
                callback_id=BUDGET_MODAL,
                private_metadata=str(view.get("private_metadata") or ""),
                budget_usd=budget,
            )
        )

    async def on_revise_modal(ack: AsyncAck, body: Mapping[str, Any]) -> None:
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        notes = (input_value(values, NOTES_BLOCK, NOTES_INPUT) or "").strip()
        if not notes:
            await ack(response_action="errors", errors={NOTES_BLOCK: "Say what should change."})
            return
        await ack()
        chosen = ((values.get(MODULES_BLOCK) or {}).get(MODULES_INPUT) or {}).get(
            "selected_options"
        ) or []
        bridge.spawn(
            bridge.submitted(
                user=str((body.get("user") or {}).get("id") or ""),
                callback_id=REVISE_MODAL,
                private_metadata=str(view.get("private_metadata") or ""),
                notes=notes,
                modules=tuple(str(o.get("value")) for o in chosen if o.get("value")),
            )
        )

    app.middleware(drop_replays)
    app.event("app_mention")(on_mention)
    app.event("message")(on_message)
    app.command(COMMAND)(on_command)
    app.action(re.compile(ACTION_PATTERN))(on_action)
    app.view(BUDGET_MODAL)(on_budget_modal)
    app.view(REVISE_MODAL)(on_revise_modal)
