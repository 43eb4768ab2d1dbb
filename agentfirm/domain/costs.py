"""Cost summaries: the one source for ``run --json``, ``costs ID`` and the task repo's
``costs.json`` (so they can never disagree).

``summarize`` folds ledger rows already in memory (a finished task's repo); ``summarize_groups``
folds the store's running totals (one row per module x tier x provider, kept by triggers with
every ledger row), so ``costs ID`` reads a few dozen rows however long the ledger is, and pages
through the calls it shows (``call_row`` each).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agentfirm.domain.calls import INTAKE_IDS, booked_as_upper_bound
from agentfirm.money import nano_to_float

if TYPE_CHECKING:  # the summaries of plain rows (``costs ID``) load no pydantic
    from agentfirm.domain.models import LedgerEntry


@dataclass(frozen=True)
class CostGroup:
    """A task's running total for one module x tier x provider (``cost_totals``)."""

    module_id: str | None
    tier: str
    provider: str
    cost_nano: int
    calls: int
    simulated: bool


@dataclass(frozen=True)
class LedgerRow:
    """One ledger row as read for display (``costs ID``'s calls): the ``LedgerEntry`` fields
    ``call_row`` shows, without a model's validation (the store wrote them valid)."""

    call_id: str
    module_id: str | None
    tier: str
    provider: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_nano: int
    latency_ms: int
    outcome: str
    simulated: bool
    at: datetime

    @property
    def upper_bound(self) -> bool:
        """As ``LedgerEntry.upper_bound``."""
        reported = self.input_tokens + self.cached_input_tokens + self.output_tokens
        return booked_as_upper_bound(self.outcome, self.cost_nano, reported)


def summarize_groups(groups: Iterable[CostGroup], *, upper_bound_nano: int) -> dict[str, Any]:
    """``{total_usd, intake_usd, build_usd, upper_bound_usd, calls_total, simulated, by_module,
    by_tier, by_provider}`` from running totals in order of first appearance on the ledger.

    ``total_usd`` is the exact sum of the ledger: ``intake_usd`` (classification, clarification,
    planning) plus ``build_usd`` (everything after). ``upper_bound_usd``: the part booked at
    reservations for calls abandoned after they were sent (the provider billed at most that).
    ``simulated`` is true when any call was served by the offline provider."""
    total = intake = calls = 0
    simulated = False
    sums: dict[str, dict[str, int]] = {"by_module": {}, "by_tier": {}, "by_provider": {}}
    for group in groups:
        total += group.cost_nano
        calls += group.calls
        simulated = simulated or group.simulated
        if group.module_id in INTAKE_IDS:
            intake += group.cost_nano
        for key, name in (
            ("by_module", group.module_id or "_task"),
            ("by_tier", group.tier),
            ("by_provider", group.provider),
        ):
            sums[key][name] = sums[key].get(name, 0) + group.cost_nano
    return {
        "total_usd": nano_to_float(total),
        "intake_usd": nano_to_float(intake),
        "build_usd": nano_to_float(total - intake),
        "upper_bound_usd": nano_to_float(upper_bound_nano),
        "calls_total": calls,
        "simulated": simulated,
        **{key: {n: nano_to_float(v) for n, v in by.items()} for key, by in sums.items()},
    }


def groups_of(entries: Iterable[LedgerEntry]) -> list[CostGroup]:
    """The running totals ``entries`` add up to, in order of first appearance."""
    groups: dict[tuple[str | None, str, str], CostGroup] = {}
    for e in entries:
        key = (e.module_id, e.tier, e.provider)
        seen = groups.get(key)
        groups[key] = CostGroup(
            e.module_id,
            e.tier,
            e.provider,
            e.cost_nano + (seen.cost_nano if seen else 0),
            1 + (seen.calls if seen else 0),
            e.simulated or (seen.simulated if seen else False),
        )
    return list(groups.values())


def call_row(e: LedgerEntry | LedgerRow) -> dict[str, Any]:
    """One call as ``costs --json`` lists it."""
    return {
        "call_id": e.call_id,
        "module_id": e.module_id,
        "tier": e.tier,
        "provider": e.provider,
        "model": e.model,
        "input_tokens": e.input_tokens,
        "cached_input_tokens": e.cached_input_tokens,
        "output_tokens": e.output_tokens,
        "cost_usd": nano_to_float(e.cost_nano),
        "latency_ms": e.latency_ms,
        "outcome": e.outcome,
        "upper_bound": e.upper_bound,
        "simulated": e.simulated,
        "at": e.at.isoformat(),
    }


def summarize(entries: list[LedgerEntry], *, with_calls: bool = False) -> dict[str, Any]:
    """``summarize_groups`` of ledger rows in memory, with every call when ``with_calls``."""
    upper = sum(e.cost_nano for e in entries if e.upper_bound)
    summary = summarize_groups(groups_of(entries), upper_bound_nano=upper)
    if with_calls:
        summary["calls"] = [call_row(e) for e in entries]
    return summary
