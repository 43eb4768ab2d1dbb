"""Money: integer nano-dollars inside, ``Decimal`` USD at the edges.

Integer nano-dollars keep sums exact in SQL (no float drift between the ledger and the budget) and
are fine-grained enough for a single cached token of the cheapest model.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

from agentfirm.errors import BadInput

NANO_PER_USD = 1_000_000_000
MAX_BUDGET_USD = Decimal(1_000_000)
"""A ceiling above this is a typo, not a budget."""
MIN_BUDGET_USD = Decimal("0.0001")
"""A ceiling below this is a typo too: a hundredth of a cent pays for no model call's
reservation (a few hundred tokens at the cheapest list prices)."""


def usd_to_nano(usd: Decimal | int | str) -> int:
    """USD → nano-dollars, rounded up so a price is never under-counted."""
    return int((Decimal(usd) * NANO_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def nano_to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


def nano_to_float(nano: int) -> float:
    """For JSON output only: USD as a number."""
    return round(nano / NANO_PER_USD, 9)


def parse_budget(value: Decimal | float | str | None, *, name: str = "budget") -> Decimal | None:
    """A budget as a person types it (``2.50``, ``$2.50``, ``1,000``) → USD; ``None`` passes.
    Raises ``BadInput`` naming the option or field (``name``) unless it is an amount from
    ``MIN_BUDGET_USD`` to ``MAX_BUDGET_USD``. The one check for every way a budget arrives: CLI
    options and prompts, the daemon API, Slack, the TUI."""
    if value is None:
        return None
    typed = str(value).strip()
    try:
        usd = Decimal(typed.lstrip("$").replace(",", ""))
    except (InvalidOperation, ValueError):
        usd = Decimal("NaN")
    example = f"e.g. {name} 2.50" if name.startswith("--") else "e.g. 2.50"
    if not usd.is_finite() or usd <= 0:
        raise BadInput(f"{name} {typed!r} is not a positive amount in USD", hint=example)
    if usd > MAX_BUDGET_USD:
        raise BadInput(f"{name} {typed!r} is over the ${MAX_BUDGET_USD:,} limit", hint=example)
    if usd < MIN_BUDGET_USD:
        raise BadInput(
            f"{name} {typed!r} is under the ${MIN_BUDGET_USD} minimum: it pays for no model call",
            hint=example,
        )
    return usd


def parse_budget_nano(value: Decimal | float | str | None, *, name: str = "budget") -> int | None:
    """``parse_budget`` in nano-dollars, for the store and the router."""
    usd = parse_budget(value, name=name)
    return None if usd is None else usd_to_nano(usd)
