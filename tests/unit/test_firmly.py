"""``firmly`` stops work that swallowed a cancellation, as Python 3.11's ``wait_for`` does when what
it waited for ended in the same loop iteration (psycopg_pool's wait for a connection)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from agentfirm.runs.firmly import firmly

# A guard against hanging forever when a behaviour is broken, not a timing assertion.
GUARD_S = 30


async def test_the_wait_for_this_guards_against_swallows_a_cancellation() -> None:
    """The premise: 3.11's wait_for carries on when cancelled as its awaitable ends."""
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def body() -> str:
        await asyncio.wait_for(ready, GUARD_S)
        return "carried on"

    task = asyncio.create_task(body())
    await asyncio.sleep(0)
    ready.set_result(1)
    task.cancel()
    outcome = await task
    if outcome != "carried on":  # pragma: no cover - a Python that no longer swallows it
        pytest.skip("this Python's wait_for raises the cancellation")


async def test_work_that_swallowed_a_stop_is_stopped_all_the_same() -> None:
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    swallowed = asyncio.Event()
    ended = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.wait_for(ready, GUARD_S)
            swallowed.set()
            await asyncio.sleep(GUARD_S)  # a long build it was told to stop
            return "ran to its end"
        finally:
            ended.set()

    job = asyncio.ensure_future(work())
    caller = asyncio.create_task(firmly(job))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    # The stop reaches the job in the iteration in which its wait ends: wait_for swallows it.
    ready.set_result(1)
    job.cancel()
    caller.cancel()
    async with asyncio.timeout(GUARD_S / 2):
        with pytest.raises(asyncio.CancelledError):
            await caller
    assert swallowed.is_set()
    assert ended.is_set()
    assert job.cancelled()


async def test_a_job_that_finishes_gives_its_result() -> None:
    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    assert await firmly(asyncio.ensure_future(work())) == 7


async def test_a_job_that_fails_raises_its_error() -> None:
    async def work() -> int:
        raise ValueError("its own")

    with pytest.raises(ValueError, match="its own"):
        await firmly(asyncio.ensure_future(work()))


async def test_a_second_stop_does_not_leave_the_job_running() -> None:
    release = asyncio.Event()

    async def work() -> None:
        try:
            await asyncio.sleep(GUARD_S)
        except asyncio.CancelledError:
            await release.wait()  # winding down (a call's grace), then gone
            raise

    job = asyncio.ensure_future(work())
    caller = asyncio.create_task(firmly(job))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    caller.cancel()
    await asyncio.sleep(0)
    caller.cancel()
    await asyncio.sleep(0)
    assert not caller.done()  # still waiting for the job to wind down
    release.set()
    async with asyncio.timeout(GUARD_S / 2):
        with contextlib.suppress(asyncio.CancelledError):
            await caller
    assert caller.cancelled()
    assert job.done()
