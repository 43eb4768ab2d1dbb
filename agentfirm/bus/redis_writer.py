"""Writing events into Redis Streams, where Redis assigns ``seq``, and repairing a Redis that lost
what it was given.

Keys per task and stream: ``agentfirm:{task_id}:{stream}`` (entries with ID ``{seq}-0``, so a read
by seq is a range, not a scan), ``…:seq`` (the INCR counter) and ``…:ids`` (event id → seq).

One Lua script INCRs the counter and XADDs the entry, so seq is unique and gap-free across every
publisher on every machine, and delivery is idempotent by event id: resending after an unknown
outcome (a timeout, a connection cut mid-reply) returns the seq already given.

A Redis that loses acknowledged writes (restarted without persistence, AOF losing its last second)
would hand seqs out again. The script refuses to deliver while the counter is below the highest seq
this writer was given (its floor); ``catch_up`` then re-adds the recent events this writer
remembers with their original seqs and raises the counter to the floor.

A writer given the system of record's ``history`` (the store's copy of a task's ``events`` stream,
recorded by the Master) also takes its floor from there the first time it writes to a task, and
re-adds from there what Redis lost: so a Redis restarted empty together with the daemon (whose
memory went with it) gets the task's history back, in order, and hands out no seq again. Events
of another stream, or that the store had not recorded yet, are beyond reach: run Redis with
``appendonly yes``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from agentfirm.bus.outbox import OutgoingEvent
from agentfirm.domain.models import Event, StreamName

log = structlog.get_logger(__name__)

_APPEND = """
local function append(stream, seq, id, ts, type, module_id, payload)
  local fields = {'id', id, 'type', type, 'ts', ts, 'payload', payload}
  if module_id ~= '' then
    fields[#fields + 1] = 'module_id'
    fields[#fields + 1] = module_id
  end
  redis.call('XADD', stream, string.format('%d-0', seq), unpack(fields))
end
"""
# KEYS: counter, stream, ids. ARGV: floor, id, ts, type, module_id, payload.
# Returns {seq, 0} delivered, {seq, 1} delivered before, {counter, 2} refused (Redis lost writes).
_PUBLISH = (
    _APPEND
    + """
local known = redis.call('HGET', KEYS[3], ARGV[2])
if known then return {tonumber(known), 1} end
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current < tonumber(ARGV[1]) then return {current, 2} end
local seq = redis.call('INCR', KEYS[1])
append(KEYS[2], seq, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('HSET', KEYS[3], ARGV[2], seq)
return {seq, 0}
"""
)
# Re-add a lost event under its original seq. KEYS as above. ARGV: seq, id, ts, type, module_id,
# payload. Returns 1 restored, 0 not lost, -1 its seq was handed out again meanwhile.
_RESTORE = (
    _APPEND
    + """
if redis.call('HEXISTS', KEYS[3], ARGV[2]) == 1 then return 0 end
local seq = tonumber(ARGV[1])
if seq <= tonumber(redis.call('GET', KEYS[1]) or '0') then return -1 end
append(KEYS[2], seq, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
redis.call('SET', KEYS[1], seq)
redis.call('HSET', KEYS[3], ARGV[2], seq)
return 1
"""
)
# KEYS: counter. ARGV: floor. Raises the counter to the floor, never lowers it.
_RAISE = """
if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
"""
_REFUSED = 2


def stream_key(task_id: str, stream: StreamName) -> str:
    """The Redis stream holding a task's events or control messages."""
    return f"agentfirm:{task_id}:{stream}"


def _keys(task_id: str, stream: StreamName) -> list[str]:
    key = stream_key(task_id, stream)
    return [f"{key}:seq", key, f"{key}:ids"]


def _fields(event: OutgoingEvent) -> list[str]:
    return [event.id, event.ts.isoformat(), event.type, event.module_id or "", event.payload]


History = Callable[[str], Awaitable[Sequence[Event]]]
"""The system of record's copy of a task's ``events`` stream, in seq order."""


def _outgoing(event: Event) -> OutgoingEvent:
    return OutgoingEvent(
        id=event.id,
        task_id=event.task_id,
        stream=event.stream,
        type=event.type,
        module_id=event.module_id,
        ts=event.ts,
        payload=json.dumps(event.payload, separators=(",", ":")),
    )


@dataclass(frozen=True)
class _Delivered:
    event: OutgoingEvent
    seq: int


class StreamWriter:
    """Delivers events through one client. Raises whatever the client raises: the caller decides
    whether to buffer or retry. Remembers its last ``retain`` deliveries for ``catch_up``, and
    reads the rest from ``history`` when given."""

    def __init__(self, client: Redis, *, retain: int, history: History | None = None) -> None:
        self._client = client
        self._publish = client.register_script(_PUBLISH)
        self._restore = client.register_script(_RESTORE)
        self._raise = client.register_script(_RAISE)
        self._floors: dict[tuple[str, StreamName], int] = {}
        self._retained: deque[_Delivered] = deque(maxlen=retain)
        self._catching_up = asyncio.Lock()
        self._history = history
        self._seeded: set[tuple[str, StreamName]] = set()

    async def _seed(self, key: tuple[str, StreamName]) -> None:
        """Take the floor of a stream this writer has not written yet from ``history``: the
        highest seq the store recorded, which a Redis restarted empty no longer knows."""
        if self._history is None or key[1] != "events" or key in self._seeded:
            return
        recorded = await self._history(key[0])
        if recorded:
            self._floors[key] = max(self._floors.get(key, 0), recorded[-1].seq)
        self._seeded.add(key)

    async def deliver(self, event: OutgoingEvent) -> int | None:
        """The event's seq once in Redis; None when Redis refused it even after ``catch_up``."""
        key = (event.task_id, event.stream)
        await self._seed(key)
        for attempt in range(2):
            seq, status = await self._publish(
                keys=_keys(*key), args=[self._floors.get(key, 0), *_fields(event)]
            )
            if status != _REFUSED:
                self._remember(event, int(seq))
                return int(seq)
            if attempt == 0:
                await self.catch_up(*key)
        return None

    async def deliver_many(self, events: Sequence[OutgoingEvent]) -> list[int | None]:
        """Deliver in order in one round trip: each event's seq, or None when it was refused
        (``catch_up`` its stream, then deliver it again)."""
        for key in {(event.task_id, event.stream) for event in events}:
            await self._seed(key)
        pipe = self._client.pipeline(transaction=False)
        for event in events:
            key = (event.task_id, event.stream)
            await self._publish(
                keys=_keys(*key), args=[self._floors.get(key, 0), *_fields(event)], client=pipe
            )
        seqs: list[int | None] = []
        for event, (seq, status) in zip(events, await pipe.execute(), strict=True):
            if status == _REFUSED:
                seqs.append(None)
            else:
                self._remember(event, int(seq))
                seqs.append(int(seq))
        return seqs

    def _remember(self, event: OutgoingEvent, seq: int) -> None:
        key = (event.task_id, event.stream)
        self._floors[key] = max(self._floors.get(key, 0), seq)
        self._retained.append(_Delivered(event, seq))

    async def catch_up(self, task_id: str, stream: StreamName) -> None:
        """When Redis's counter is below this writer's floor, re-add the remembered events it
        lost and raise the counter, so no seq is handed out twice."""
        async with self._catching_up:
            keys = _keys(task_id, stream)
            floor = self._floors.get((task_id, stream), 0)
            current = int(await self._client.get(keys[0]) or 0)
            if current >= floor:
                return
            remembered = {
                d.seq: d
                for d in self._retained
                if (d.event.task_id, d.event.stream) == (task_id, stream) and d.seq > current
            }
            if self._history is not None and stream == "events":
                for event in await self._history(task_id):
                    if event.seq > current and event.seq not in remembered:
                        remembered[event.seq] = _Delivered(_outgoing(event), event.seq)
            lost = [remembered[seq] for seq in sorted(remembered)]
            pipe = self._client.pipeline(transaction=False)
            for d in lost:
                await self._restore(keys=keys, args=[d.seq, *_fields(d.event)], client=pipe)
            await self._raise(keys=keys[:1], args=[floor], client=pipe)
            results = await pipe.execute()
            log.warning(
                "bus.redis_lost_events",
                task_id=task_id,
                stream=stream,
                counter=current,
                floor=floor,
                restored=sum(1 for result in results[:-1] if result == 1),
                unrecoverable=floor - current - len(lost),
            )

    async def check(self) -> None:
        """``catch_up`` every stream written lately whose counter went back (Redis restarted
        empty while this writer was idle)."""
        streams = sorted({(d.event.task_id, d.event.stream) for d in self._retained})
        if not streams:
            return
        pipe = self._client.pipeline(transaction=False)
        for task_id, stream in streams:
            pipe.get(_keys(task_id, stream)[0])
        for (task_id, stream), current in zip(streams, await pipe.execute(), strict=True):
            if int(current or 0) < self._floors.get((task_id, stream), 0):
                await self.catch_up(task_id, stream)
