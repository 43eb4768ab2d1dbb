"""What an in-process drive (``run``, ``resume``, ``approve`` … with ``--no-daemon``) says when
Ctrl-C stops it: at the first one, what happens to the calls and tool calls in flight; at the
second, what it still waits for; as it stops, where the task was left and how to pick it up."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from agentfirm.settings import Settings


@contextmanager
def left_resumable(task_ids: Sequence[str]) -> Iterator[Callable[[Settings, int, int], None]]:
    """Ctrl-C during an in-process drive: the task stays where it was (its modules cut short go
    back to pending) and nothing drives it; say so, and how to pick it up (``tasks list``
    shows it as waiting on ``resume``). Yields what to say at the first Ctrl-C, as it arrives
    (``with_app``'s ``on_interrupt``): the drive may take the grace to wind down."""
    try:
        yield winding_down
    except KeyboardInterrupt:
        if task_ids:
            from agentfirm.cli.output import error

            error(
                f"stopped; task {task_ids[0]} waits where it was: agentfirm resume {task_ids[0]} "
                "picks it up (it keeps its --offline, runner and --yes)"
            )
        raise


def winding_down(settings: Settings, in_flight: int, tools: int = 0) -> None:
    """Said at the first Ctrl-C of an in-process drive, with ``in_flight`` requests sent and
    not yet answered: those are not hung up on (the provider bills them either way) but given
    ``cancel_grace_s`` to answer, so they are booked at what they cost; a second Ctrl-C stops
    at once, and those calls are then booked at their reservations, as estimates. With none in
    flight there is nothing to wait for, and it says so. ``tools`` tool calls running get the
    same grace; a second Ctrl-C cuts them off, journaled as such (not run again on resume)."""
    from agentfirm.cli.output import note

    if in_flight <= 0 and tools > 0:
        note(f"stopping: {_tools_wait(settings, tools)}")
        return
    if in_flight <= 0:
        note("stopping now: no call is in flight")
        return
    also = f"; {_tools_wait(settings, tools)}" if tools > 0 else ""
    if in_flight == 1:
        calls, gets, booked, cut = "1 call already sent", "gets", "is booked at what it costs", "it"
        at = "its reservation"
    else:
        calls, gets, booked = (
            f"{in_flight} calls already sent",
            "get",
            "are booked at what they cost",
        )
        cut, at = "them", "their reservations"
    grace = settings.cancel_grace_s
    if grace <= 0:
        note(f"stopping: {calls} {booked.split(' at ')[0]} at {at} (marked ≤){also}")
        return
    note(
        f"stopping: {calls} {gets} up to {grace:g}s to answer and {booked}; Ctrl-C again stops "
        f"now, booking {cut} at {at} (marked ≤, estimates){also}"
    )


def _tools_wait(settings: Settings, tools: int) -> str:
    calls, gets, it = (
        ("1 tool call", "gets", "it") if tools == 1 else (f"{tools} tool calls", "get", "them")
    )
    why = f"(the transcript says so; resume does not run {it} again)"
    grace = settings.cancel_grace_s
    if grace <= 0:
        return f"{calls} running {'is' if tools == 1 else 'are'} cut off {why}"
    return f"{calls} running {gets} up to {grace:g}s to answer; Ctrl-C again cuts {it} off {why}"


def still_waiting(what: str) -> None:
    """Said at a second Ctrl-C of an in-process drive, and as each such wait begins after it:
    what the run waits for that is not cut off (brief work that must not be left half done,
    such as a tool server's stop), and that a third Ctrl-C stops at once."""
    from agentfirm.cli.output import note

    note(f"waiting for {what}; Ctrl-C again stops at once")
