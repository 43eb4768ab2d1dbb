"""genai-prices list prices, prepared once per model for the router's hot path.

``genai_prices.calc_price`` resolves and validates the model's whole price table on every call
(about 0.2 ms, and the router prices every attempt twice: its worst case, then its usage). Our
``Usage`` only ever carries four counts — input (cache reads and writes included), cache reads,
cache writes, output — so a model's price is four rates per price tier. They are read once per
price table and, before being trusted, checked against ``calc_price`` on probe usages in every
tier: a table the four-rate formula does not reproduce exactly (a per-request fee, say) keeps
going through ``calc_price``. Which table applies is still asked of genai-prices on every call,
so dated price changes take effect as they would there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from agentfirm.router.base import Usage

if TYPE_CHECKING:
    from genai_prices.types import ModelInfo, ModelPrice, TieredPrices
    from genai_prices.types import Provider as PriceProvider
    from genai_prices.types import Usage as PriceUsage

_MTOK = Decimal(1_000_000)
_KILO = Decimal(1_000)
_PROBE_INPUT = 1_000
"""Input tokens of the probes below the first tier, and above each tier's start."""


def _rate(price: Decimal | TieredPrices, total_input: int) -> Decimal:
    """genai-prices' cliff model: the highest tier whose start the TOTAL input passes prices
    every token of the unit."""
    if isinstance(price, Decimal):
        return price
    for tier in reversed(price.tiers):
        if total_input > tier.start:
            return tier.price
    return price.base


@dataclass(frozen=True)
class Rates:
    """A price table's four token prices (USD per million tokens, maybe tiered). A cache price
    the table lacks is the input price, as in genai-prices."""

    input: Decimal | TieredPrices
    cache_read: Decimal | TieredPrices
    cache_write: Decimal | TieredPrices
    output: Decimal | TieredPrices
    web_searches_kcount: Decimal | None = None
    """USD per thousand web searches; None when the table has no search fee."""

    def usd(self, usage: Usage) -> Decimal | None:
        """The price of ``usage``; None when its counts do not add up (more cached than input),
        which only genai-prices knows how to treat, or when it searched and the table prices no
        search."""
        total = usage.input_tokens
        uncached = total - usage.cached_input_tokens - usage.cache_write_tokens
        if uncached < 0:
            return None
        searches = Decimal(0)
        if usage.web_searches:
            if self.web_searches_kcount is None:
                return None
            searches = usage.web_searches * self.web_searches_kcount / _KILO
        return (
            uncached * _rate(self.input, total)
            + usage.cached_input_tokens * _rate(self.cache_read, total)
            + usage.cache_write_tokens * _rate(self.cache_write, total)
            + usage.output_tokens * _rate(self.output, total)
        ) / _MTOK + searches


@dataclass(frozen=True)
class _Model:
    info: ModelInfo
    provider: PriceProvider


def _price_usage(usage: Usage) -> PriceUsage:
    from genai_prices.types import Usage as PriceUsage

    return PriceUsage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        web_searches=usage.web_searches,
    )


def _flat(price: object) -> Decimal | None:
    """A per-unit fee that is one plain price (a tiered one keeps its table on ``calc_price``)."""
    return price if isinstance(price, Decimal) else None


def _probe_totals(rates: Rates) -> list[int]:
    """One total input count inside every price tier the rates have (tiers start after
    ``start`` tokens)."""
    starts = sorted(
        {
            tier.start
            for price in (rates.input, rates.cache_read, rates.cache_write, rates.output)
            if not isinstance(price, Decimal)
            for tier in price.tiers
        }
    )
    bounds = [*starts, None]
    totals = [min(_PROBE_INPUT, bounds[0]) if bounds[0] is not None else _PROBE_INPUT]
    for start, following in zip(starts, bounds[1:], strict=True):
        above = start + _PROBE_INPUT
        totals.append(above if following is None else min(above, following))
    return totals


class ListPrices:
    """List prices by ``(genai-prices provider id, model)``. Remembers what it looked up: one per
    router, not shared between threads."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str], _Model | None] = {}
        # Keyed by the table's id; the table is kept beside its rates so the id stays its own.
        self._rates: dict[int, tuple[ModelPrice, Rates | None]] = {}

    def usd(self, provider_id: str, model: str, usage: Usage) -> Decimal | None:
        """genai-prices' price of ``usage``, or None when it has no complete list price (no
        such model, or no input or output price: those tokens would silently count as free)."""
        found = self._model(provider_id, model)
        if found is None:
            return None
        now = datetime.now(UTC)
        table = found.info.get_prices(now)
        if table.input_mtok is None or table.output_mtok is None:
            return None
        rates = self._prepared(found, table, now)
        usd = rates.usd(usage) if rates is not None else None
        if usd is not None:
            return usd
        return self._calc(found, usage, now)

    def flat_rates(self, provider_id: str, model: str) -> Rates | None:
        """The model's current prepared rates when each is one plain price (no tiers), for the
        router's integer fast path; None otherwise (no list price, tiered, or not reproducing
        ``calc_price``)."""
        found = self._model(provider_id, model)
        if found is None:
            return None
        now = datetime.now(UTC)
        rates = self._prepared(found, found.info.get_prices(now), now)
        if rates is None:
            return None
        prices = (rates.input, rates.cache_read, rates.cache_write, rates.output)
        return rates if all(isinstance(price, Decimal) for price in prices) else None

    def context_window(self, provider_id: str, model: str) -> int | None:
        """The model's input-token window per genai-prices' metadata, or None."""
        found = self._model(provider_id, model)
        return None if found is None else found.info.context_window

    def fast(self, provider_id: str, model: str) -> bool:
        """Whether the model's current table is priced by its prepared rates (for tests)."""
        found = self._model(provider_id, model)
        if found is None:
            return False
        now = datetime.now(UTC)
        return self._prepared(found, found.info.get_prices(now), now) is not None

    def _model(self, provider_id: str, model: str) -> _Model | None:
        key = (provider_id, model)
        if key not in self._models:
            from genai_prices import Usage as PriceUsage
            from genai_prices import calc_price

            try:
                found = calc_price(PriceUsage(input_tokens=1), model, provider_id=provider_id)
            except LookupError:
                self._models[key] = None
            else:
                self._models[key] = _Model(found.model, found.provider)
        return self._models[key]

    @staticmethod
    def _calc(found: _Model, usage: Usage, now: datetime) -> Decimal:
        result = found.info.calc_price(
            _price_usage(usage),
            found.provider,
            genai_request_timestamp=now,
        )
        total: Decimal = result.total_price
        return total

    def _prepared(self, found: _Model, table: ModelPrice, now: datetime) -> Rates | None:
        cached = self._rates.get(id(table))
        if cached is not None and cached[0] is table:
            return cached[1]
        rates = self._check(found, table, now)
        self._rates[id(table)] = (table, rates)
        return rates

    def _check(self, found: _Model, table: ModelPrice, now: datetime) -> Rates | None:
        """The table's rates if they reproduce ``calc_price`` exactly on probe usages in each
        tier (each count alone and mixed), else None."""
        inp, out = table.input_mtok, table.output_mtok
        if inp is None or out is None:
            return None
        read, write = table.cache_read_mtok, table.cache_write_mtok
        rates = Rates(
            input=inp,
            cache_read=inp if read is None else read,
            cache_write=inp if write is None else write,
            output=out,
            web_searches_kcount=_flat(getattr(table, "web_searches_kcount", None)),
        )
        searches = () if rates.web_searches_kcount is None else (3,)
        for total in _probe_totals(rates):
            probes = [
                Usage(input_tokens=total, output_tokens=777, web_searches=n) for n in searches
            ]
            for usage in (
                *probes,
                Usage(input_tokens=total),
                Usage(input_tokens=total, cached_input_tokens=total // 4),
                Usage(input_tokens=total, cache_write_tokens=total // 3),
                Usage(input_tokens=total, output_tokens=777),
                Usage(total, total // 5, 1_001, total // 3),
            ):
                try:
                    expected = self._calc(found, usage, now)
                except (ValueError, ArithmeticError):
                    return None
                if rates.usd(usage) != expected:
                    return None
        return rates
