"""Stopping work that may swallow a cancellation.

Python 3.11's ``asyncio.wait_for`` returns its result instead of raising when the task awaiting it
is cancelled in the loop iteration in which the awaited thing ends (CPython gh-86296, fixed in
3.12). psycopg_pool waits for a connection that way, and redis-py for a socket: a build stopped at
that instant carries on as if nothing happened, and a worker told to stop runs it to its end.
``firmly`` and ``cancel_until_done`` cancel again until the work has ended."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

T = TypeVar("T")

AGAIN_S = 0.5
"""How long a cancelled job has to end before it is cancelled again. Not shorter: a cancelled
router call waits out a grace for its answer, and each new cancel is one more interruption it
has to absorb."""


async def firmly(job: asyncio.Future[T]) -> T:
    """``job``'s result. Cancelled meanwhile, ``job`` is cancelled too — again every ``AGAIN_S``
    while it goes on — and the cancellation is raised once it has ended, whatever its outcome (a
    job that finished all the same has its result dropped: the caller asked to stop)."""
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await cancel_until_done(job)
        if not job.cancelled():
            job.exception()  # retrieved: the caller's cancellation wins over the outcome
        raise


async def cancel_until_done(job: asyncio.Future[Any]) -> None:
    """Cancel ``job``, again every ``AGAIN_S`` while it goes on, and return once it has ended
    (its outcome is left in it). A cancellation of the caller meanwhile changes nothing: it
    returns only once ``job`` has ended, and the caller's cancellation is not raised here."""
    while not job.done():
        job.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait((job,), timeout=AGAIN_S)
