"""The work queue: approved tasks waiting for a worker, on the Redis stream ``agentfirm:work`` read
through one consumer group (ARCHITECTURE.md §7, issue 4).

An entry carries the task id and, for a run of the task's Build Master, the run id and revision
notes the Master Agent gave it. A worker claims an entry, keeps it fresh with ``touch`` while it
runs the task, and acks it when done. An entry idle for longer than ``min_idle_ms`` belongs to a
worker that died: the next ``claim`` takes it over (XAUTOCLAIM) before taking new work; a worker
shutting down cleanly ``release``s its entries so that happens at once. Delivery is at least
once — a claim whose reply was lost, or a worker presumed dead that was only slow, means a task
can be handed out twice — so running a claimed task must be idempotent (the Build Master skips
done modules; the budget is reserved in the shared store).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, NamedTuple, TypeVar, cast

import redis.exceptions
from redis.asyncio import Redis
from redis.typing import EncodableT, FieldT

from agentfirm.bus.redis_conn import connect, redis_location, retry_unreachable

T = TypeVar("T")

WORK_STREAM = "agentfirm:work"

# A stream entry as redis-py returns it with ``decode_responses=True``.
_Entry = tuple[str, dict[str, str]]

# KEYS: work stream. ARGV: group, consumer, entry id, idle ms. Sets the entry's idle time (0:
# fresh; huge: reclaimable at once) only while the consumer holds it: 1 held, -1 another consumer
# holds it, 0 not pending (acked, or lost with a Redis that restarted empty). A slow worker never
# takes back work another one reclaimed.
_SET_IDLE = """
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 0 then return 0 end
if pending[1][2] ~= ARGV[2] then return -1 end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
return 1
"""
# Shared by the scripts below. ``ensure_group``: create the group (from the stream's start) when
# Redis does not know it — first use, or a Redis that restarted empty. ``last_delivered``: the
# group's last delivered id. ``unfinished``: the oldest entry of a task that is queued (after the
# last delivered id) or held (pending), as {entry id, run id}, or nil.
_QUEUE_LIB = """
local function ensure_group(stream, group)
  if redis.call('EXISTS', stream) == 1 then
    for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
      for i = 1, #info, 2 do
        if info[i] == 'name' and info[i + 1] == group then return end
      end
    end
  end
  redis.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
end
local function last_delivered(stream, group)
  for _, info in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local fields = {}
    for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
    if fields['name'] == group then return fields['last-delivered-id'] end
  end
  return '0-0'
end
local function field(entry, name)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return ''
end
local function unfinished(stream, group, task_id)
  local found = nil
  for _, p in ipairs(redis.call('XPENDING', stream, group, '-', '+', 10000)) do
    local entry = redis.call('XRANGE', stream, p[1], p[1])[1]
    if entry and field(entry, 'task_id') == task_id then
      found = {entry[1], field(entry, 'run_id')}
      break
    end
  end
  if found then return found end
  local after = '(' .. last_delivered(stream, group)
  for _, entry in ipairs(redis.call('XRANGE', stream, after, '+')) do
    if field(entry, 'task_id') == task_id then return {entry[1], field(entry, 'run_id')} end
  end
  return nil
end
"""
# KEYS: work stream. ARGV: group, task id, run id, notes. The task's unfinished run if it has one
# ({entry id, run id, 1}), else a new entry for this run ({entry id, run id, 0}): one run of a task
# at a time, however many Master Agents ask.
_ENQUEUE_RUN = (
    _QUEUE_LIB
    + """
ensure_group(KEYS[1], ARGV[1])
local found = unfinished(KEYS[1], ARGV[1], ARGV[2])
if found then return {found[1], found[2], 1} end
local fields = {'task_id', ARGV[2], 'run_id', ARGV[3]}
if ARGV[4] ~= '' then
  fields[5] = 'notes'
  fields[6] = ARGV[4]
end
return {redis.call('XADD', KEYS[1], '*', unpack(fields)), ARGV[3], 0}
"""
)
# KEYS: work stream. ARGV: group, entry id. Where the entry is: 'held' (pending), 'queued' (not
# yet delivered), 'done' (acked) or 'lost' (not in the stream: a Redis that restarted empty).
_LOCATE = (
    _QUEUE_LIB
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'lost' end
if #redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2]) == 0 then return 'lost' end
ensure_group(KEYS[1], ARGV[1])
if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1) > 0 then return 'held' end
if #redis.call('XRANGE', KEYS[1], '(' .. last_delivered(KEYS[1], ARGV[1]), ARGV[2]) > 0 then
  return 'queued'
end
return 'done'
"""
)
# Errors saying the stream or its group is gone: recreate the group and carry on.
_GROUP_GONE = ("NOGROUP", "UNBLOCKED")
# Far longer than any reclaim threshold: a released entry is reclaimable at once.
_RELEASED_IDLE_MS = 10**12

Hold = Literal["held", "taken", "gone"]
"""What ``touch`` found: the caller still holds the entry; another consumer took it over (stop
working on it); or it is not pending at all (acked, or lost by a Redis that restarted empty)."""

_HOLD: dict[int, Hold] = {1: "held", -1: "taken", 0: "gone"}


Place = Literal["queued", "held", "done", "lost"]
"""Where a queued run is: waiting for a worker; held by one; acked (its worker finished it); or
not in the stream at all (a Redis that restarted empty lost it: queue it again)."""


class QueuedRun(NamedTuple):
    """The entry a run of a task is queued as. ``reused``: the entry was there already (the
    task had an unfinished run, queued or held: ``run_id`` says which, maybe not the one asked
    for)."""

    entry_id: str
    run_id: str
    reused: bool


class WorkClaim(NamedTuple):
    """A work entry now held by the claiming consumer; ``ack`` it when the task is done.
    ``reclaimed``: it was taken over from a consumer presumed dead (which may have left the
    task's work half done)."""

    entry_id: str
    task_id: str
    run_id: str = ""
    notes: str = ""
    reclaimed: bool = False


def _claim_of(entry: _Entry, *, reclaimed: bool) -> WorkClaim:
    entry_id, fields = entry
    return WorkClaim(
        entry_id=entry_id,
        task_id=fields["task_id"],
        run_id=fields.get("run_id", ""),
        notes=fields.get("notes", ""),
        reclaimed=reclaimed,
    )


class RedisWorkQueue:
    """The ``agentfirm:work`` stream and its consumer group ``group``. A call taking longer than
    ``io_timeout`` s (plus its own wait) counts as Redis being unreachable; calls retry for
    ``patience`` s while Redis is unreachable, then raise ``BusUnavailable``."""

    def __init__(
        self,
        url: str,
        *,
        group: str = "workers",
        stream: str = WORK_STREAM,
        io_timeout: float = 5.0,
        patience: float = 30.0,
        max_backoff: float = 2.0,
    ) -> None:
        self.group = group
        self.stream = stream
        self._url = url
        self._io_timeout = io_timeout
        self._patience = patience
        self._max_backoff = max_backoff
        self._redis: Redis | None = None

    async def open(self) -> None:
        """Create the client; no connection is made until the first call."""
        if self._redis is None:
            self._redis = connect(self._url, connect_timeout=self._io_timeout)

    async def close(self) -> None:
        if self._redis is not None:
            client, self._redis = self._redis, None
            await client.aclose()

    def _client(self) -> Redis:
        if self._redis is None:
            raise RuntimeError("work queue is not open: call open() first")
        return self._redis

    async def _call(self, call: Callable[[Redis], Awaitable[T]], *, wait_ms: int = 0) -> T:
        client = self._client()
        return await retry_unreachable(
            lambda: call(client),
            attempt_timeout=self._io_timeout + wait_ms / 1000,
            patience=self._patience,
            max_backoff=self._max_backoff,
            where=redis_location(client),
        )

    async def _in_group(self, call: Callable[[Redis], Awaitable[T]], *, wait_ms: int = 0) -> T:
        """``call``, creating the group first when Redis does not know it (first use, or a Redis
        that restarted empty or was flushed: a claim blocked meanwhile is told ``UNBLOCKED``)."""
        try:
            return await self._call(call, wait_ms=wait_ms)
        except redis.exceptions.ResponseError as err:
            if not any(gone in str(err) for gone in _GROUP_GONE):
                raise
        try:
            await self._call(
                lambda c: c.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            )
        except redis.exceptions.ResponseError as err:
            if "BUSYGROUP" not in str(err):  # another worker created it first: fine
                raise
        return await self._call(call, wait_ms=wait_ms)

    async def enqueue(self, task_id: str, *, run_id: str = "", notes: str = "") -> str:
        """Queue a task for execution (a run ``run_id`` of its Build Master, with revision
        ``notes``); the entry id."""
        fields: dict[FieldT, EncodableT] = {"task_id": task_id}
        if run_id:
            fields["run_id"] = run_id
        if notes:
            fields["notes"] = notes
        entry_id = await self._call(lambda c: c.xadd(self.stream, fields))
        return str(entry_id)

    async def enqueue_run(self, task_id: str, *, run_id: str, notes: str = "") -> QueuedRun:
        """Queue run ``run_id`` of the task's Build Master, unless the task already has a run
        queued or held by a worker: then that run (a Master Agent resumed while its earlier run
        goes on must wait for it, not start a second one). Atomic: of several callers at once,
        one queues and the rest get its run. Idempotent: queueing the same run again while it is
        unfinished returns it."""
        reply = await self._call(
            lambda c: c.eval(_ENQUEUE_RUN, 1, self.stream, self.group, task_id, run_id, notes)
        )
        entry_id, queued_run, reused = cast(list[str | int], reply)
        return QueuedRun(str(entry_id), str(queued_run), bool(int(reused)))

    async def locate(self, entry_id: str) -> Place:
        """Where the entry is (see ``Place``); ``"lost"`` when Redis lost it."""
        place = await self._call(lambda c: c.eval(_LOCATE, 1, self.stream, self.group, entry_id))
        return cast(Place, str(place))

    async def claim(
        self, consumer: str, *, block_ms: int | None = 1000, min_idle_ms: int = 60_000
    ) -> WorkClaim | None:
        """The entry of a dead worker (idle ≥ ``min_idle_ms``) if there is one, else a new entry,
        waiting up to ``block_ms`` for one (None: do not wait). None when there is no work."""
        reclaimed = await self._in_group(
            lambda c: c.xautoclaim(self.stream, self.group, consumer, min_idle_ms, "0-0", count=1)
        )
        # XAUTOCLAIM also returns (at most once) ids of entries deleted from the stream meanwhile;
        # those come as None fields and carry no work.
        stale = [e for e in cast(list[_Entry], reclaimed[1]) if e and e[1]]
        if stale:
            return _claim_of(stale[0], reclaimed=True)
        reply = await self._in_group(
            lambda c: c.xreadgroup(
                self.group, consumer, {self.stream: ">"}, count=1, block=block_ms
            ),
            wait_ms=block_ms or 0,
        )
        for _stream, entries in cast(list[tuple[str, list[_Entry]]], reply):
            if entries:
                return _claim_of(entries[0], reclaimed=False)
        return None

    async def touch(self, consumer: str, entry_id: str) -> Hold:
        """Reset the entry's idle time so nobody reclaims it, if ``consumer`` still holds it.
        ``"taken"``: another worker reclaimed it — stop working on it."""
        return await self._set_idle(consumer, entry_id, 0)

    async def release(self, consumer: str, entry_id: str) -> Hold:
        """Give up an entry without finishing it (a worker shutting down): the next ``claim``
        of any worker takes it over at once, as if its holder had died long ago."""
        return await self._set_idle(consumer, entry_id, _RELEASED_IDLE_MS)

    async def _set_idle(self, consumer: str, entry_id: str, idle_ms: int) -> Hold:
        found = await self._in_group(
            lambda c: c.eval(_SET_IDLE, 1, self.stream, self.group, consumer, entry_id, idle_ms)
        )
        return _HOLD[int(found)]

    async def ack(self, entry_id: str) -> bool:
        """Mark the entry done; False when it was not pending (already acked)."""
        acked = await self._in_group(lambda c: c.xack(self.stream, self.group, entry_id))
        return bool(acked)
