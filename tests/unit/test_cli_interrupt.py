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


def test_a_second_ctrl_c_cuts_off_without_raising_inside_the_loop() -> None:
    """The second Ctrl-C used to go on to asyncio's handler, which raises KeyboardInterrupt
    wherever the main thread is: inside a loop callback, a future it was about to resolve stays
    unresolved for ever, and the run hung as it shut down (1 in ~20 runs under load). It cuts
    the calls off instead and lets the cancelled run unwind; a third Ctrl-C is asyncio's."""
    finished: list[str] = []
    cut: list[bool] = []

    async def winding_down() -> None:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        try:
            signal.raise_signal(signal.SIGINT)  # the first: the run is cancelled
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            # The grace: waiting for an answer; the second Ctrl-C lands inside a callback.
            def callback() -> None:
                signal.raise_signal(signal.SIGINT)
                finished.append("callback")

            loop.call_soon(callback)
            loop.call_later(0.05, lambda: answer.cancel() if cut else answer.set_result(None))
            await answer
            raise

    def cut_off() -> None:
        cut.append(True)

    try:
        run_async(_telling_interrupt(winding_down(), lambda: None, cut_off=cut_off))
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("a run stopped by Ctrl-C raises KeyboardInterrupt")

    assert cut == [True]
    assert finished == ["callback"]


def test_a_third_ctrl_c_stops_at_once() -> None:
    """A run whose unwinding hangs after the second Ctrl-C is still stopped by a third."""

    async def stuck() -> None:
        try:
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(0)
            signal.raise_signal(signal.SIGINT)
            await asyncio.sleep(10)  # never ends by itself
            raise

    try:
        run_async(_telling_interrupt(stuck(), lambda: None))
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("not stopped")
