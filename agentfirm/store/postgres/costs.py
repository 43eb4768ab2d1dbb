"""Cost summaries on PostgreSQL from the running totals its triggers keep (migrations 0002 and
0004), instead of reading every ledger row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.rows import DictRow

# The running totals of migration 0002 (one row per task x module x tier x provider).
SUMMARY_SQL = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated FROM cost_totals"
    " WHERE task_id = %s ORDER BY first_at, first_seq"
)
# The firm-wide totals of migration 0004 (one row per module x tier x provider).
SUMMARY_ALL_SQL = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated FROM cost_rollup"
    " ORDER BY first_at, first_seq"
)


def fold_cost_groups(rows: Sequence[DictRow]) -> dict[str, Any]:
    """Fold ``SUMMARY_SQL`` groups (first-appearance order) into per-module/tier/provider sums."""
    summary: dict[str, Any] = {
        "total_nano": 0,
        "calls": 0,
        "simulated": False,
        "by_module": {},
        "by_tier": {},
        "by_provider": {},
    }
    for row in rows:
        summary["total_nano"] += row["cost_nano"]
        summary["calls"] += row["calls"]
        summary["simulated"] = summary["simulated"] or bool(row["simulated"])
        for key, name in (
            ("by_module", row["module_id"] or "_task"),
            ("by_tier", row["tier"]),
            ("by_provider", row["provider"]),
        ):
            summary[key][name] = summary[key].get(name, 0) + row["cost_nano"]
    return summary
