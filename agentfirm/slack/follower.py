"""Daemon → Slack: one follower per task reads its event stream (resumable from the last seq
handled) and keeps its thread current — a prompt per question asked, the prompt turned into who
decided once it is decided, one progress message edited at most once per interval, and the
final summary when the task ends.

The daemon going away (a restart) is retried with backoff from the last seq; Slack refusing a
call is logged and the thread carries on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import structlog

from agentfirm.api.follow import follow
from agentfirm.domain.notices import notice_text
from agentfirm.errors import NotFound
from agentfirm.slack.daemon_link import DaemonLink
from agentfirm.slack.progress import Progress, final_summary
from agentfirm.slack.prompts import Message, decided, notice, prompt
from agentfirm.slack.threads import TaskThread, ThreadBook
from agentfirm.slack.throttle import Clock, Coalescer
from agentfirm.slack.web import SlackOut

log = structlog.get_logger(__name__)

MAX_RECONNECT_DELAY_S = 30.0


class Followers:
    """The followers of every task in ``book``."""

    def __init__(
        self,
        out: SlackOut,
        daemon: DaemonLink,
        book: ThreadBook,
        *,
        clock: Clock,
        edit_interval: float = 1.0,
        reconnect_delay: float = 1.0,
    ) -> None:
        self.out = out
        self.daemon = daemon
        self.book = book
        self.clock = clock
        self.edit_interval = edit_interval
        self.reconnect_delay = reconnect_delay
        self._progress: dict[str, Progress] = {}
        self._editors: dict[str, Coalescer[Message]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def follow(self, thread: TaskThread, *, persona: str | None = None) -> None:
        """Start following ``thread``'s task (once)."""
        if self.following(thread.task_id):
            return
        self._progress.setdefault(thread.task_id, Progress(thread.task_id, persona=persona))
        self._tasks[thread.task_id] = asyncio.create_task(
            self._follow(thread), name=f"slack-follow-{thread.task_id}"
        )

    def following(self, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and not task.done()

    async def quiet(self, task_id: str) -> None:
        """Until no progress edit of ``task_id`` is in flight."""
        editor = self._editors.get(task_id)
        if editor is not None:
            await editor.quiet()

    async def finished(self, task_id: str) -> None:
        """Until the follower of ``task_id`` has posted the final summary (or stopped)."""
        task = self._tasks.get(task_id)
        if task is not None:
            await asyncio.shield(task)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for editor in self._editors.values():
            await editor.close()

    async def _follow(self, thread: TaskThread) -> None:
        progress = self._progress[thread.task_id]

        def seed(detail: dict[str, Any]) -> None:
            progress.seed(detail)
            self._show(thread)

        with structlog.contextvars.bound_contextvars(task_id=thread.task_id):
            while True:
                try:
                    async for event in follow(
                        self.daemon,
                        thread.task_id,
                        after_seq=thread.last_seq,
                        on_task=seed,
                        first_delay=self.reconnect_delay,
                        max_delay=MAX_RECONNECT_DELAY_S,
                        sleep=self.clock.sleep,
                    ):
                        await self.handle_event(thread, event)
                    await self._finish(thread, await self.daemon.task(thread.task_id))
                    return
                except NotFound as err:
                    log.warning("slack.task_gone", error=str(err))
                    self.book.drop(thread.task_id)
                    await self.book.save()
                    return
                except Exception as err:  # Slack or a bug: carry on from the last seq handled
                    log.warning("slack.follow_failed", error=f"{type(err).__name__}: {err}")
                await self.clock.sleep(self.reconnect_delay)

    async def handle_event(self, thread: TaskThread, event: Mapping[str, Any]) -> None:
        """One event of the task's stream: progress, prompts, decisions, completion."""
        seq = int(event.get("seq") or 0)
        if seq and seq <= thread.last_seq:
            return  # handled before a reconnect
        self._progress[thread.task_id].apply(event)
        kind = str(event.get("type") or "")
        payload: Mapping[str, Any] = event.get("payload") or {}
        if kind == "approval.requested":
            await self._ask(thread, str(payload.get("approval_id")))
        elif kind == "approval.decided":
            await self._answered(thread, payload)
        elif kind == "task.completed":
            thread.completion = dict(payload)
        elif kind == "task.result" and payload.get("error"):
            # The daemon stopped driving it (a broken MCP server, bad config): say why and how
            # to fix it, in the words the CLI prints.
            await self.out.post(
                thread.channel, thread.thread_ts, notice(f"stopped: {payload['error']}")
            )
        elif (text := notice_text(kind, payload)) is not None:
            # A refused key or an overrun: a reply in the thread, not lost in the progress.
            await self.out.post(thread.channel, thread.thread_ts, notice(text))
        thread.last_seq = max(thread.last_seq, seq)
        self._show(thread)

    def _show(self, thread: TaskThread) -> None:
        editor = self._editors.get(thread.task_id)
        if editor is None:

            async def edit(message: Message) -> None:
                await self.out.edit(thread.channel, thread.progress_ts, message)

            editor = Coalescer(
                edit, interval=self.edit_interval, clock=self.clock, name=thread.task_id
            )
            self._editors[thread.task_id] = editor
        editor.push(self._progress[thread.task_id].render())

    async def _ask(self, thread: TaskThread, approval_id: str) -> None:
        if approval_id in thread.prompts:
            return  # asked already (a replayed event)
        rows = await self.daemon.approvals(thread.task_id, pending=True)
        row = next((r for r in rows if r.get("id") == approval_id), None)
        if row is None:
            return  # answered before we got to it
        kind = str(row.get("kind"))
        if kind == "plan":
            self._progress[thread.task_id].plan(row.get("payload") or {})
        # Known before it is posted: a reply or click can arrive before Slack's answer does.
        thread.kinds[approval_id] = kind
        if kind == "clarify":
            thread.clarify = approval_id
        ts = await self.out.post(thread.channel, thread.thread_ts, prompt(row))
        if ts is not None:
            thread.prompts[approval_id] = ts
            await self.book.save()

    async def _answered(self, thread: TaskThread, payload: Mapping[str, Any]) -> None:
        approval_id = str(payload.get("approval_id"))
        if thread.clarify == approval_id:
            thread.clarify = None
        ts = thread.prompts.get(approval_id)
        if ts is not None and approval_id not in thread.answered:
            thread.answered.append(approval_id)
            kind = thread.kinds.get(approval_id) or str(payload.get("kind"))
            await self.out.update(thread.channel, ts, decided(kind, payload))

    async def _finish(self, thread: TaskThread, detail: Mapping[str, Any]) -> None:
        self._progress[thread.task_id].seed(detail)
        self._show(thread)
        await self._editors[thread.task_id].flush()
        # Questions closed without a decision event (a cancelled task) lose their buttons too.
        for row in await self.daemon.approvals(thread.task_id):
            if row.get("decision") != "pending" and str(row.get("id")) in thread.prompts:
                await self._answered(thread, {**row, "approval_id": row.get("id")})
        costs = await self.daemon.costs(thread.task_id)
        summary = final_summary(detail, costs, thread.completion)
        await self.out.post(thread.channel, thread.thread_ts, summary)
        log.info("slack.task_closed", status=detail.get("status"))
        self.book.drop(thread.task_id)
        await self.book.save()
