"""Cost summaries derived from the ledger: the one source for ``run --json``, ``costs ID`` and the
task repo's ``costs.json`` (so they can never disagree)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentfirm.domain import LedgerEntry
from agentfirm.money import nano_to_float


def _by(entries: Iterable[LedgerEntry], key: str) -> dict[str, float]:
    """Sums per ``key``, in order of first appearance on the ledger (execution order)."""
    sums: dict[str, int] = {}
    for entry in entries:
        name = getattr(entry, key) or "_task"
        sums[name] = sums.get(name, 0) + entry.cost_nano
    return {name: nano_to_float(nano) for name, nano in sums.items()}


def summarize(entries: list[LedgerEntry], *, with_calls: bool = False) -> dict[str, Any]:
    """``{total_usd, simulated, by_module, by_tier, by_provider[, calls]}`` (ARCHITECTURE.md §11).

    ``total_usd`` is the exact sum of the ledger; ``simulated`` is true when any call was served by
    the offline provider."""
    summary: dict[str, Any] = {
        "total_usd": nano_to_float(sum(e.cost_nano for e in entries)),
        "simulated": any(e.simulated for e in entries),
        "by_module": _by(entries, "module_id"),
        "by_tier": _by(entries, "tier"),
        "by_provider": _by(entries, "provider"),
    }
    if with_calls:
        summary["calls"] = [
            {
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
                "simulated": e.simulated,
                "at": e.at.isoformat(),
            }
            for e in entries
        ]
    return summary
