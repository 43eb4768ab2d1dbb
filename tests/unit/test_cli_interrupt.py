"""What an in-process command says at the first Ctrl-C is hooked before asyncio's own handler,
where there is one to stand before: in the main thread only."""

from __future__ import annotations

import asyncio
import signal
import threading
from types import FrameType

from agentfirm.cli.context import _telling_interrupt, run_async


async def _answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_a_command_run_outside_the_main_thread_hooks_no_signal() -> None:
    """An embedding app's own SIGINT handler in its main thread, a command run in a worker
    thread: setting a handler there would raise (signals belong to the main thread)."""

    def theirs(signum: int, frame: FrameType | None) -> None:
        raise AssertionError("not called")

    results: list[object] = []

    def command() -> None:
        try:
            results.append(run_async(_telling_interrupt(_answer(), lambda: None)))
        except Exception as exc:
            results.append(exc)

    before = signal.signal(signal.SIGINT, theirs)
    try:
        worker = threading.Thread(target=command)
        worker.start()
        worker.join()
    finally:
        signal.signal(signal.SIGINT, before)

    assert results == [42]


def test_the_hook_is_gone_once_the_command_has_run() -> None:
    before = signal.getsignal(signal.SIGINT)

    assert run_async(_telling_interrupt(_answer(), lambda: None)) == 42

    assert signal.getsignal(signal.SIGINT) is before
