"""The bridge between Slack and the daemon. Slack → daemon here: a mention or ``/agentfirm``
becomes a task with its own thread, a click or a thread reply becomes a decision with actor
``slack:<user id>`` — each only for someone the ``AccessPolicy`` lets act; anyone else gets an
ephemeral refusal. Daemon → Slack is ``follower.Followers``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import structlog

from agentfirm.errors import AgentfirmError, BadInput, NotFound
from agentfirm.slack.access import AccessPolicy
from agentfirm.slack.daemon_link import DaemonLink
from agentfirm.slack.follower import Followers
from agentfirm.slack.inputs import (
    input_value,
    parse_answers,
    parse_usd,
    read_metadata,
    request_text,
)
from agentfirm.slack.prompts import (
    ACTIONS,
    BUDGET_BLOCK,
    BUDGET_INPUT,
    BUDGET_MODAL,
    Message,
    budget_modal,
    escape,
    metadata,
    questions_of,
    revise_modal,
)
from agentfirm.slack.threads import TaskThread, ThreadBook
from agentfirm.slack.throttle import Clock, SystemClock
from agentfirm.slack.web import SlackOut

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

log = structlog.get_logger(__name__)


class SlackBridge:
    """Owns the task threads, their followers and the work handlers start. ``client`` is the
    Web API client (its base URL decides which Slack it talks to); ``daemon`` the daemon's
    API."""

    def __init__(
        self,
        client: AsyncWebClient,
        daemon: DaemonLink,
        policy: AccessPolicy,
        *,
        book: ThreadBook | None = None,
        clock: Clock | None = None,
        offline: bool = False,
        edit_interval: float = 1.0,
        reconnect_delay: float = 1.0,
    ) -> None:
        self.out = SlackOut(client)
        self.daemon = daemon
        self.policy = policy
        self.book = book or ThreadBook()
        self.offline = offline
        self.followers = Followers(
            self.out,
            daemon,
            self.book,
            clock=clock or SystemClock(),
            edit_interval=edit_interval,
            reconnect_delay=reconnect_delay,
        )
        self._background: set[asyncio.Task[Any]] = set()
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> list[str]:
        """Follow again every task of the thread book (a restarted bridge); returns their ids."""
        threads = self.book.load()
        self._started = True
        for thread in threads:
            self.followers.follow(thread)
        return [thread.task_id for thread in threads]

    async def stop(self) -> None:
        """Cancel the followers and pending work; the thread book keeps where each stopped."""
        for task in self._background:
            task.cancel()
        if self._background:
            await asyncio.wait(self._background)
        await self.followers.stop()
        if self._started:  # a bridge that never loaded the book must not overwrite it
            await self.book.save()

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` in the background (a Slack handler acks first, then this)."""
        task = asyncio.create_task(self._logged(work))
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _logged(self, work: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await work
        except Exception:
            log.exception("slack.handler_failed")
            return None

    async def settled(self) -> None:
        """Until the background work started so far is done."""
        while self._background:
            await asyncio.wait(list(self._background))

    def following(self, task_id: str) -> bool:
        return self.followers.following(task_id)

    async def quiet(self, task_id: str) -> None:
        await self.followers.quiet(task_id)

    async def finished(self, task_id: str) -> None:
        await self.followers.finished(task_id)

    # ------------------------------------------------------------------ Slack → daemon
    async def request(
        self,
        *,
        user: str,
        channel: str,
        text: str,
        ts: str | None = None,
        thread_ts: str | None = None,
        bot_user_id: str | None = None,
    ) -> str | None:
        """A mention (``ts`` of the message) or ``/agentfirm`` (no ``ts``): a new task in its
        own thread. Returns the task id, or None when nothing was started."""
        refusal = self.policy.refusal(user, channel)
        if refusal:
            await self.out.ephemeral(channel, user, refusal, thread_ts)
            return None
        existing = self.book.in_thread(channel, thread_ts) if thread_ts else None
        if existing is not None:
            if existing.clarify:  # "@agentfirm the EU" in the thread answers its questions
                await self.reply(user=user, channel=channel, thread_ts=thread_ts, text=text)
            else:
                await self.out.ephemeral(
                    channel,
                    user,
                    f"This thread belongs to task `{existing.task_id}`. Mention me outside a "
                    "thread to start a new task.",
                    thread_ts,
                )
            return None
        wanted = request_text(text, bot_user_id)
        if not wanted:
            await self.out.ephemeral(
                channel, user, "Tell me what you need, e.g. `/agentfirm market sizing for …`"
            )
            return None
        root = thread_ts or ts
        if root is None:
            root = await self.out.post(
                channel, None, Message(f"<@{user}> asked: {escape(wanted)}", [])
            )
            if root is None:
                return None
        progress_ts = await self.out.post(
            channel, root, Message("⏳ Received: classifying and planning…", [])
        )
        if progress_ts is None:
            return None
        try:
            created = await self.daemon.submit(wanted, offline=self.offline, actor=f"slack:{user}")
        except AgentfirmError as err:
            await self.out.update(channel, progress_ts, Message(f"⛔ Could not start: {err}", []))
            return None
        task_id = str(created["task_id"])
        log.info("slack.task_created", task_id=task_id, actor=f"slack:{user}")
        thread = TaskThread(task_id, channel, root, progress_ts, requester=user)
        self.book.add(thread)
        await self.book.save()
        self.followers.follow(thread, persona=created.get("persona"))
        return task_id

    async def act(
        self,
        *,
        user: str,
        channel: str,
        action_id: str,
        approval_id: str,
        values: Mapping[str, Any],
        trigger_id: str | None = None,
        thread_ts: str | None = None,
    ) -> None:
        """A button in a prompt: decide its approval, or open the modal it stands for."""
        refusal = self.policy.refusal(user, channel)
        if refusal:
            await self.out.ephemeral(channel, user, refusal, thread_ts)
            return
        action = ACTIONS.get(action_id)
        if action is None:
            return
        budget, answers = None, None
        try:
            row = await self._pending(approval_id)
            if action.opens_modal:
                meta = metadata(approval=approval_id, channel=channel, thread=thread_ts or "")
                modal = budget_modal if action.opens_modal == BUDGET_MODAL else revise_modal
                await self.out.open_view(trigger_id or "", modal(row, meta))
                return
            if action.decision == "approved" and action.kind in ("plan", "budget"):
                budget = parse_usd(input_value(values, BUDGET_BLOCK, BUDGET_INPUT))
            if action.kind == "clarify":
                answers = {q["id"]: q["default"] for q in questions_of(row.get("payload") or {})}
        except AgentfirmError as err:
            await self.out.ephemeral(channel, user, f"That did not go through: {err}", thread_ts)
            return
        await self.decide(
            user,
            channel,
            approval_id,
            action.decision,
            thread_ts,
            budget_usd=budget,
            answers=answers,
        )

    async def submitted(
        self,
        *,
        user: str,
        callback_id: str,
        private_metadata: str,
        budget_usd: Decimal | None = None,
        notes: str = "",
        modules: tuple[str, ...] = (),
    ) -> None:
        """A modal submitted (its input already validated by the handler)."""
        meta = read_metadata(private_metadata)
        channel, thread_ts = meta.get("channel", ""), meta.get("thread") or None
        refusal = self.policy.refusal(user, channel)
        if refusal:
            await self.out.ephemeral(channel, user, refusal, thread_ts)
            return
        approval_id = meta.get("approval", "")
        if callback_id == BUDGET_MODAL:
            await self.decide(
                user, channel, approval_id, "approved", thread_ts, budget_usd=budget_usd
            )
        else:
            await self.decide(
                user, channel, approval_id, "revise", thread_ts, notes=notes, modules=modules
            )

    async def reply(self, *, user: str, channel: str, thread_ts: str | None, text: str) -> None:
        """A message in a task's thread: the answers to its pending clarifying questions (any
        other chatter is left alone)."""
        thread = self.book.in_thread(channel, thread_ts)
        if thread is None or thread.clarify is None:
            return
        refusal = self.policy.refusal(user, channel)
        if refusal:
            await self.out.ephemeral(channel, user, refusal, thread_ts)
            return
        approval_id = thread.clarify
        try:
            row = await self._pending(approval_id)
        except AgentfirmError as err:
            await self.out.ephemeral(channel, user, f"That did not go through: {err}", thread_ts)
            return
        answers = parse_answers(request_text(text, None), questions_of(row.get("payload") or {}))
        await self.decide(user, channel, approval_id, "approved", thread_ts, answers=answers)

    async def decide(
        self,
        user: str,
        channel: str,
        approval_id: str,
        decision: str,
        thread_ts: str | None = None,
        **details: Any,
    ) -> bool:
        """Record ``user``'s decision with the daemon; a refusal is told to them alone."""
        try:
            await self.daemon.decide(approval_id, decision, actor=f"slack:{user}", **details)
        except AgentfirmError as err:
            await self.out.ephemeral(channel, user, f"That did not go through: {err}", thread_ts)
            return False
        log.info("slack.decided", approval_id=approval_id, decision=decision, actor=f"slack:{user}")
        return True

    async def _pending(self, approval_id: str) -> dict[str, Any]:
        """The approval row, if this app asked it and it is still undecided."""
        thread = self.book.asking(approval_id)
        if thread is None:
            raise NotFound(f"question {approval_id} is not one this Slack app asked")
        for row in await self.daemon.approvals(thread.task_id):
            if row.get("id") == approval_id:
                if row.get("decision") != "pending":
                    raise BadInput(
                        f"this question was already answered: {row.get('decision')} by "
                        f"{row.get('actor')}"
                    )
                return row
        raise NotFound(f"question {approval_id} not found on task {thread.task_id}")
