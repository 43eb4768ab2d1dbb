"""The team bus: Redis Streams, with a disk outbox for when Redis is away (ARCHITECTURE.md §7).

Who assigns ``seq``: Redis, on delivery (``redis_writer``), so seq is unique and gap-free across
every publisher on every machine — the daemon's Master Agent and the workers' Build Masters
publish to the same task. A seq allocated locally while Redis is down could not be unique across
machines, so an event Redis does not take at once is written to the outbox without a seq and
``publish`` returns (the returned event then has ``seq == 0``). A flusher delivers the outbox in
publish order when Redis is back, retrying with exponential backoff and jitter; while anything is
buffered, new publishes queue behind it, so one publisher's events keep their order.

Consumers read by seq (entry IDs are ``{seq}-0``): ``replay`` with XRANGE, ``subscribe`` with
XREAD BLOCK from the last seq it yielded, reconnecting with backoff; a seq is never yielded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import structlog
from redis.asyncio import Redis

from agentfirm.bus.outbox import Outbox, OutgoingEvent
from agentfirm.bus.redis_conn import (
    ANY_REDIS_TROUBLE,
    Backoff,
    connect,
    redis_location,
    retry_unreachable,
)
from agentfirm.bus.redis_writer import History, StreamWriter, stream_key
from agentfirm.domain.models import Event, StreamName, utcnow
from agentfirm.ids import new_id

log = structlog.get_logger(__name__)

T = TypeVar("T")

_PAGE = 500
_FLUSH_BATCH = 200


def _encode_payload(payload: dict[str, Any]) -> str:
    try:
        return json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except ValueError as err:  # NaN/infinity or a circular reference
        raise TypeError(f"event payload is not JSON-serialisable: {err}") from err


# A stream entry as redis-py returns it with ``decode_responses=True``.
_Entry = tuple[str, dict[str, str]]


def _decode(task_id: str, stream: StreamName, entry_id: str, fields: dict[str, str]) -> Event:
    return Event(
        id=fields["id"],
        task_id=task_id,
        stream=stream,
        seq=int(entry_id.partition("-")[0]),
        type=fields["type"],
        module_id=fields.get("module_id"),
        ts=datetime.fromisoformat(fields["ts"]),
        payload=json.loads(fields["payload"]),
    )


class RedisStreamsBus:
    """``Bus`` on Redis Streams with a disk outbox at ``outbox_path`` (one file per publisher
    process is simplest; processes may also share one).

    ``publish`` waits at most ``publish_timeout`` s for Redis, and not at all while the outbox is
    draining. Any other Redis call taking longer than ``io_timeout`` s counts as Redis being
    unreachable. ``subscribe`` reconnects with backoff (up to ``max_backoff`` s) for as long as it
    runs, each read waiting up to ``block_ms`` for news; ``replay`` retries for ``read_patience``
    s, then raises ``BusUnavailable``. ``retain`` recent deliveries are remembered to repair a
    Redis that lost them, and ``history`` (the store's events) repairs it beyond them (see
    ``redis_writer``); ``health_interval`` is how often an idle bus checks for that.
    """

    def __init__(
        self,
        url: str,
        *,
        outbox_path: Path,
        publish_timeout: float = 0.25,
        io_timeout: float = 5.0,
        block_ms: int = 1000,
        max_backoff: float = 2.0,
        read_patience: float = 30.0,
        retain: int = 2048,
        health_interval: float = 1.0,
        history: History | None = None,
    ) -> None:
        self._url = url
        self._outbox = Outbox(outbox_path)
        self._publish_timeout = publish_timeout
        self._io_timeout = io_timeout
        self._block_ms = block_ms
        self._max_backoff = max_backoff
        self._read_patience = read_patience
        self._retain = retain
        self._health_interval = health_interval
        self._history = history
        self._redis: Redis | None = None
        self._writer: StreamWriter | None = None
        self._closed: asyncio.Future[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        # True while the outbox may hold events: publishes then queue behind them, in order.
        self._draining = False
        # Bumped by every buffered publish, so the flusher never concludes "empty" from a read
        # that raced with an append.
        self._generation = 0
        self._down = False

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Open the outbox and start its flusher. Works while Redis is down."""
        if self._redis is not None:
            return
        await self._outbox.open()
        self._redis = connect(self._url, connect_timeout=self._io_timeout)
        self._writer = StreamWriter(self._redis, retain=self._retain, history=self._history)
        self._closed = asyncio.get_running_loop().create_future()
        self._draining = await self._outbox.count() > 0
        if self._draining:
            self._drained.clear()
        else:
            self._drained.set()
        self._flusher = asyncio.create_task(self._flush_forever(), name="redis-bus-flusher")

    async def close(self) -> None:
        """Stop the flusher and end this bus's subscriptions. Undelivered events stay in the
        outbox for the next bus opened on it (``wait_drained`` first to deliver them now)."""
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if self._redis is not None:
            client, self._redis, self._writer = self._redis, None, None
            await client.aclose()
        await self._outbox.close()

    def _client(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("Redis bus is not open: call open() first")
        return self._redis

    def _stream_writer(self) -> StreamWriter:
        if self._writer is None:
            raise RuntimeError("Redis bus is not open: call open() first")
        return self._writer

    @property
    def _is_closed(self) -> bool:
        return self._closed is None or self._closed.done()

    def _note_down(self, err: BaseException) -> None:
        if not self._down:
            self._down = True
            log.warning(
                "bus.redis_unreachable", where=redis_location(self._client()), error=repr(err)
            )

    # ------------------------------------------------------------------ publish
    async def publish(
        self,
        task_id: str,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        module_id: str | None = None,
        stream: StreamName = "events",
    ) -> Event:
        """Deliver the event, or buffer it in the outbox when Redis does not take it within
        ``publish_timeout`` (the returned event then has ``seq == 0``: Redis assigns the seq on
        delivery). Never raises for Redis; ``TypeError`` when the payload is not JSON."""
        event = OutgoingEvent(
            id=new_id("ev"),
            task_id=task_id,
            stream=stream,
            type=type,
            module_id=module_id,
            ts=utcnow(),
            payload=_encode_payload(payload or {}),
        )
        writer = self._stream_writer()
        if not self._draining:
            try:
                async with asyncio.timeout(self._publish_timeout):
                    seq = await writer.deliver(event)
                if seq is not None:
                    return event.with_seq(seq)
            except ANY_REDIS_TROUBLE as err:
                self._note_down(err)
        # Flag first: a publish racing with this append must queue behind it too.
        self._draining = True
        self._generation += 1
        self._drained.clear()
        await self._outbox.append(event)
        self._wake.set()
        return event.with_seq(0)

    # ------------------------------------------------------------------ outbox flusher
    async def pending(self) -> int:
        """How many events wait in the outbox."""
        return await self._outbox.count()

    async def wait_drained(self) -> None:
        """Return once the outbox is empty (wrap it in ``asyncio.timeout``): call it before
        closing a short-lived publisher so its buffered events go out now, not at its next run."""
        await self._drained.wait()

    async def _flush_forever(self) -> None:
        backoff = Backoff(cap=self._max_backoff)
        while True:
            self._wake.clear()
            try:
                while True:
                    async with asyncio.timeout(self._io_timeout):
                        if not await self._flush_batch():
                            break
            except ANY_REDIS_TROUBLE as err:
                self._note_down(err)
                await asyncio.sleep(backoff.next_delay())
                continue
            except Exception:  # e.g. the outbox file: the flusher must outlive it and retry
                log.exception("bus.flush_failed", outbox=str(self._outbox.path))
                await asyncio.sleep(backoff.next_delay())
                continue
            if self._down:
                self._down = False
                log.info("bus.redis_reachable", where=redis_location(self._client()))
            backoff.reset()
            try:
                async with asyncio.timeout(self._health_interval):
                    await self._wake.wait()
            except TimeoutError:
                with contextlib.suppress(*ANY_REDIS_TROUBLE):
                    async with asyncio.timeout(self._io_timeout):
                        await self._stream_writer().check()

    async def _flush_batch(self) -> bool:
        """Deliver the oldest outbox events; False when the outbox was empty."""
        generation = self._generation
        entries = await self._outbox.oldest(_FLUSH_BATCH)
        if not entries:
            if generation == self._generation:
                self._draining = False
                self._drained.set()
            return False
        writer = self._stream_writer()
        seqs = await writer.deliver_many([entry.event for entry in entries])
        results = list(zip(entries, seqs, strict=True))
        await self._outbox.remove([entry.position for entry, seq in results if seq is not None])
        # Refused: Redis lost writes. Repair the stream; the events go out on the next round.
        refused = {(entry.event.task_id, entry.event.stream) for entry, seq in results if not seq}
        for task_id, stream in refused:
            await writer.catch_up(task_id, stream)
        return True

    # ------------------------------------------------------------------ read
    async def replay(
        self, task_id: str, *, after_seq: int = 0, stream: StreamName = "events"
    ) -> list[Event]:
        """Every event in Redis with ``seq > after_seq``, in order (buffered ones are not there
        yet). Retries for ``read_patience`` s, then raises ``BusUnavailable``."""
        key = stream_key(task_id, stream)
        events: list[Event] = []
        while True:
            start = f"{(events[-1].seq if events else after_seq) + 1}-0"
            page = await self._retrying(functools.partial(self._page, key, start))
            events += [_decode(task_id, stream, entry_id, fields) for entry_id, fields in page]
            if len(page) < _PAGE:
                return events

    async def subscribe(
        self,
        task_id: str,
        *,
        after_seq: int = 0,
        stream: StreamName = "events",
        poll_interval: float = 0.05,
    ) -> AsyncGenerator[Event, None]:
        """Yield events with ``seq > after_seq`` in order, then follow new ones (Redis pushes
        them: ``poll_interval`` is not used). Reconnects with backoff while Redis is away. Ends
        when cancelled, closed with ``aclose()``, or when this bus is closed."""
        self._client()  # not open: say so, rather than yield nothing
        key = stream_key(task_id, stream)
        last = after_seq
        backoff = Backoff(cap=self._max_backoff)
        while not self._is_closed:
            try:
                reply = await self._unless_closed(self._follow(key, last))
            except ANY_REDIS_TROUBLE as err:
                log.debug("bus.subscriber_reconnecting", task_id=task_id, error=repr(err))
                await self._unless_closed(asyncio.sleep(backoff.next_delay()))
                continue
            if reply is None:
                return
            backoff.reset()
            for _key, entries in reply:
                for entry_id, fields in entries:
                    event = _decode(task_id, stream, entry_id, fields)
                    if event.seq > last:  # never twice, even after Redis was repaired
                        yield event
                        last = event.seq

    async def _unless_closed(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None (``work`` cancelled) when the bus closes first."""
        task = asyncio.ensure_future(work)
        closed = self._closed
        if closed is None or closed.done():
            task.cancel()
            return None
        try:
            waiters: set[asyncio.Future[Any]] = {task, closed}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *ANY_REDIS_TROUBLE):
                    await task
        return None if task.cancelled() else task.result()

    async def _follow(self, key: str, last: int) -> list[tuple[str, list[_Entry]]]:
        """Entries after ``last``, waiting up to ``block_ms`` for one to arrive."""
        async with asyncio.timeout(self._block_ms / 1000 + self._io_timeout):
            reply = await self._client().xread(
                {key: f"{last}-0"}, count=_PAGE, block=self._block_ms
            )
        return cast(list[tuple[str, list[_Entry]]], reply)

    async def _page(self, key: str, start: str) -> list[_Entry]:
        return cast(list[_Entry], await self._client().xrange(key, min=start, count=_PAGE))

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_unreachable(
            call,
            attempt_timeout=self._io_timeout,
            patience=self._read_patience,
            max_backoff=self._max_backoff,
            where=redis_location(self._client()),
        )
