"""A long-running process's start-up heap, set aside from the cyclic garbage collector.

After start-up a driving process holds ~85,000 tracked objects (modules, classes, settings,
personas, the SDK clients) that live as long as it does. The collector's full passes walk all of
them: ~30 ms each, every thousand or so calls, a stall in the middle of a burst of concurrent
calls (a fifth of the client's CPU in 640 concurrent calls on PostgreSQL: bench/postgres_router).
Freezing them once start-up is done moves them to the permanent generation, which no pass walks;
garbage made afterwards is collected as before.
"""

from __future__ import annotations

import gc
import os

import structlog

log = structlog.get_logger(__name__)


def settle_heap() -> int:
    """Collect what start-up left behind, then freeze the rest; how many objects are frozen.
    Called by the processes that drive tasks (the daemon, a worker, an in-process run, a remote
    kernel) once they are ready, never by a read command (the full collection costs ~30 ms).
    Once a process: what later callers hold is their work, which may yet become garbage."""
    if gc.get_freeze_count():
        return gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("process.heap_settled", frozen_objects=frozen, pid=os.getpid())
    return frozen
