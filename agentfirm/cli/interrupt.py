"""What an in-process drive (``run``, ``resume``, ``approve`` … with ``--no-daemon``) says when
Ctrl-C stops it: at the first one, what happens to the calls in flight; as it stops, where the
task was left and how to pick it up."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from agentfirm.settings import Settings


@contextmanager
def left_resumable(task_ids: Sequence[str]) -> Iterator[Callable[[Settings, int], None]]:
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


def winding_down(settings: Settings, in_flight: int) -> None:
    """Said at the first Ctrl-C of an in-process drive, with ``in_flight`` requests sent and
    not yet answered: those are not hung up on (the provider bills them either way) but given
    ``cancel_grace_s`` to answer, so they are booked at what they cost; a second Ctrl-C stops
    at once, and those calls are then booked at their reservations, as estimates. With none in
    flight there is nothing to wait for, and it says so."""
    from agentfirm.cli.output import note

    if in_flight <= 0:
        note("stopping now: no call is in flight")
        return
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
        note(f"stopping: {calls} {booked.split(' at ')[0]} at {at} (marked ≤)")
        return
    note(
        f"stopping: {calls} {gets} up to {grace:g}s to answer and {booked}; Ctrl-C again stops "
        f"now, booking {cut} at {at} (marked ≤, estimates)"
    )
