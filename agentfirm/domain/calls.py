"""The calls a task makes besides its modules' — their reserved ids — and the output caps per tier.

Reserved ids start with ``_`` (persona module ids cannot), so ledger rows, artifacts and events of
the Master's own calls never collide with a module's. Light on purpose: front ends import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import asyncio

CLASSIFY_ID = "_classify"
CLARIFY_ID = "_clarify"
PLAN_ID = "_plan"
STITCH_ID = "_stitch"
QUALITY_ID = "_quality"
DELIVERABLE_ID = "_deliverable"
"""The stitched draft's artifact (not a call of its own: the stitch call writes it)."""

INTAKE_IDS = frozenset({CLASSIFY_ID, CLARIFY_ID, PLAN_ID})
"""The Master's calls before a plan is approved."""
ASSEMBLY_IDS = frozenset({STITCH_ID, QUALITY_ID})
"""The Build Master's calls after the modules: the stitch and the quality judgement."""
RESERVED_IDS = INTAKE_IDS | ASSEMBLY_IDS | {DELIVERABLE_ID}


RESERVATION_GRACE_S = 60.0
"""Added to the provider timeout before a reservation counts as abandoned: covers the router's
deadline grace, the settle's own round trip, a paused process and clock skew between machines
(a reservation is stamped by the clock of the process that made it)."""


def stale_reservation_age(provider_timeout_s: float) -> timedelta:
    """How old a reservation must be before no live holder can still settle it: every call is
    over (settled or released) by its deadline, the provider timeout plus a grace."""
    return timedelta(seconds=provider_timeout_s + RESERVATION_GRACE_S)


class InFlight:
    """What this process has under way that a stop must deal with: the requests it has sent
    and not yet seen end (answered, failed or cut off) and the tool calls running — what a first
    Ctrl-C lets finish, and says it does, and what a second one cuts off — and the work that is
    never cut (``finishing``: brief, and not to be left half done), which a second Ctrl-C waits
    for and names. One per process context, shared by the routers it builds; kept by the router
    around each send and by the agent loop around each tool call."""

    __slots__ = ("_finishing", "heard", "sent", "tools")

    def __init__(self) -> None:
        self.sent: set[asyncio.Future[Any]] = set()
        self.tools: set[asyncio.Future[Any]] = set()
        self._finishing: dict[object, str] = {}
        self.heard: Callable[[str], None] | None = None
        """Told what is waited for as each ``finishing`` begins, once set (a second Ctrl-C
        sets it: what begins after it is named as it begins)."""

    @property
    def count(self) -> int:
        return len(self.sent)

    @property
    def tool_count(self) -> int:
        return len(self.tools)

    @property
    def finishing_now(self) -> list[str]:
        """What is being finished now, in the order it began (each named once)."""
        return list(dict.fromkeys(self._finishing.values()))

    @contextmanager
    def finishing(self, what: str) -> Iterator[None]:
        """Mark the block as work a stop waits for rather than cuts (``what`` names it, e.g.
        ``"mcp:notes to stop"``)."""
        key = object()
        self._finishing[key] = what
        if self.heard is not None:
            self.heard(what)
        try:
            yield
        finally:
            del self._finishing[key]


def booked_as_upper_bound(outcome: str, cost_nano: int, reported_tokens: int) -> bool:
    """Whether a ledger row's cost is the most the provider can bill for the attempt, not what
    it reported: a request abandoned after it was sent, booked at its reservation, with no
    usage (``reported_tokens``: its tokens of every kind) behind it. A row the provider's own
    record made exact (``Store.rebook``) carries that record's usage."""
    return outcome == "cancelled" and cost_nano > 0 and not reported_tokens


def is_reserved(module_id: str) -> bool:
    """Whether an id names one of the Master's or Build Master's own calls, not a module."""
    return module_id in RESERVED_IDS


MAX_TOKENS: Mapping[Literal["reasoning", "execution", "utility"], int] = {
    "reasoning": 4096,
    "execution": 2048,
    "utility": 1024,
}
"""Per-call output ceiling by tier: what the router reserves and what estimates assume."""
