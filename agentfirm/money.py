"""Money: integer nano-dollars inside, ``Decimal`` USD at the edges.

Integer nano-dollars keep sums exact in SQL (no float drift between the ledger and the budget) and
are fine-grained enough for a single cached token of the cheapest model.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

NANO_PER_USD = 1_000_000_000


def usd_to_nano(usd: Decimal | int | str) -> int:
    """USD → nano-dollars, rounded up so a price is never under-counted."""
    return int((Decimal(usd) * NANO_PER_USD).to_integral_value(rounding=ROUND_CEILING))


def nano_to_usd(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


def nano_to_float(nano: int) -> float:
    """For JSON output only: USD as a number."""
    return round(nano / NANO_PER_USD, 9)
