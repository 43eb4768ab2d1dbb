"""A model's flat prices as whole nano-dollars, for pricing a call with integer arithmetic.

The router prices every attempt twice (its worst case, then its usage). Through ``Decimal`` and
genai-prices' table lookup that is the largest share of what the router adds to a call once the
CPU has gone cold waiting on the provider (bench/router_overhead.py). A price quoted in USD per
million tokens with at most nine decimals is a whole number of nano-dollars per million tokens, so
the cost of a call is one integer sum, divided by a million and rounded up — exactly what the
``Decimal`` path computes, as tests/unit/test_exact_prices.py checks. Tiered prices, and prices
finer than that, keep the ``Decimal`` path.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from agentfirm.router.base import Usage
from agentfirm.router.list_prices import Rates
from agentfirm.settings import PriceOverride

_NANO = 10**9
_MTOK = 10**6
_PER_SEARCH_K = 1_000
"""Search fees are per thousand searches; token prices per million tokens."""


def _nano(price: Decimal | None) -> int | None:
    """``price`` (USD) in whole nano-dollars, or None when it is finer than that."""
    if price is None:
        return None
    nano = price * _NANO
    return int(nano) if nano == nano.to_integral_value() else None


@dataclass(frozen=True)
class ExactRates:
    """Nano-dollars per million tokens (``search_k``: per thousand searches; None when searches
    have no known fee). ``writes_as_input``: a price override, which has no cache-write rate and
    prices written tokens as input (see ``pricing._override_usd``)."""

    input: int
    cache_read: int
    cache_write: int
    output: int
    search_k: int | None
    writes_as_input: bool = False

    def nano(self, usage: Usage) -> int | None:
        """The cost of ``usage`` rounded up to whole nano-dollars; None when the ``Decimal``
        path must decide (counts that do not add up, or a search with no known fee)."""
        if self.writes_as_input:
            uncached = max(usage.input_tokens - usage.cached_input_tokens, 0)
            writes = 0
        else:
            uncached = usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens
            if uncached < 0:
                return None
            writes = usage.cache_write_tokens
        searches = 0
        if usage.web_searches:
            if self.search_k is None:
                return None
            searches = usage.web_searches * self.search_k * (_MTOK // _PER_SEARCH_K)
        total = (
            uncached * self.input
            + usage.cached_input_tokens * self.cache_read
            + writes * self.cache_write
            + usage.output_tokens * self.output
            + searches
        )
        return -(-total // _MTOK)


def exact_list_rates(rates: Rates) -> ExactRates | None:
    """``rates`` (flat list prices) in nano-dollars, or None when one is tiered or finer."""
    tokens = [
        _nano(price) if isinstance(price, Decimal) else None
        for price in (rates.input, rates.cache_read, rates.cache_write, rates.output)
    ]
    search_k = _nano(rates.web_searches_kcount)
    if rates.web_searches_kcount is not None and search_k is None:
        return None
    inp, read, write, out = tokens
    if inp is None or read is None or write is None or out is None:
        return None
    return ExactRates(inp, read, write, out, search_k)


def exact_override_rates(price: PriceOverride, list_rates: Rates | None) -> ExactRates | None:
    """An override's prices in nano-dollars, with the list's search fee (the list's rates known
    but without a fee: searches are free, as on the ``Decimal`` path; not known: a call that
    searched goes the ``Decimal`` way). None when a price is finer than whole nano-dollars."""
    inp = _nano(price.input_per_mtok)
    cached = price.cached_input_per_mtok
    read = _nano(price.input_per_mtok if cached is None else cached)
    out = _nano(price.output_per_mtok)
    if inp is None or read is None or out is None:
        return None
    search_k: int | None = None
    if list_rates is not None:
        fee = list_rates.web_searches_kcount
        search_k = 0 if fee is None else _nano(fee)
        if search_k is None:
            return None
    return ExactRates(inp, read, inp, out, search_k, writes_as_input=True)
