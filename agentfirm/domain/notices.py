"""Events a person must hear of whichever front end they watch (the CLI, even under
``--json``; the TUI's event log; the task's Slack thread), in one wording: a provider that
refused its key, a call that cost more than it reserved."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NOTICES = frozenset({"provider.key_refused", "budget.overrun"})


def notice_text(kind: str, payload: Mapping[str, Any]) -> str | None:
    """The plain-text line for a notice event; None for any other event."""
    if kind == "provider.key_refused":
        took_over = payload.get("took_over")
        after = f"; {took_over} took over" if took_over else "; nothing took over"
        key = payload.get("key")
        return (
            f"{payload.get('provider')} refused its key {key}{after}"
            f" (set a valid one: agentfirm secrets set {key})"
        )
    if kind == "budget.overrun":
        cost = float(payload.get("cost_usd", 0))
        over = float(payload.get("overrun_usd", 0))
        return f"a call cost ${cost:.4f}, ${over:.4f} more than it reserved (booked in full)"
    return None
