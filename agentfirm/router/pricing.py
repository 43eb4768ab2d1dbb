"""List prices: ``genai-prices`` tables, overridable per model in config.

A call that cannot be priced is never counted as $0: ``check`` reports such a model up front and
``price_nano`` refuses with a ``ConfigError`` before anything is spent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from decimal import Decimal

from agentfirm.errors import ConfigError
from agentfirm.money import usd_to_nano
from agentfirm.router.base import ChainEntry, Usage
from agentfirm.router.exact_prices import ExactRates, exact_list_rates, exact_override_rates
from agentfirm.router.list_prices import ListPrices
from agentfirm.settings import PriceOverride

_MTOK = Decimal(1_000_000)
_EXACT_TTL_S = 60.0
"""How long a model's integer prices are reused before genai-prices is asked again, so a dated
price change in its tables takes effect within a minute."""

# Our provider names → genai-prices provider ids.
_PRICE_PROVIDER: Mapping[str, str] = {"gemini": "google"}

# For an offline entry with no ``price_as``: whose list price applies, by model name prefix.
_MODEL_FAMILIES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("claude",), "anthropic"),
    (("gpt", "o1", "o3", "o4"), "openai"),
    (("gemini",), "google"),
)


def _price_provider(entry: ChainEntry) -> str:
    provider = entry.price_as or entry.provider
    if provider == "offline":
        model = entry.model.lower()
        for prefixes, family in _MODEL_FAMILIES:
            if model.startswith(prefixes):
                return family
    return _PRICE_PROVIDER.get(provider, provider)


def _override_usd(price: PriceOverride, usage: Usage) -> Decimal:
    # An override has no cache-write rate: written tokens are priced as plain input.
    cached_rate = price.cached_input_per_mtok
    if cached_rate is None:
        cached_rate = price.input_per_mtok
    uncached = max(usage.input_tokens - usage.cached_input_tokens, 0)
    return (
        uncached * price.input_per_mtok
        + usage.cached_input_tokens * cached_rate
        + usage.output_tokens * price.output_per_mtok
    ) / _MTOK


class Pricer:
    """Prices calls in nano-dollars. ``overrides`` (``settings.prices``) are keyed by model name
    or by ``provider:model`` label, and win over genai-prices."""

    def __init__(
        self,
        overrides: Mapping[str, PriceOverride] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._overrides = dict(overrides or {})
        self._list = ListPrices()
        self._clock = clock
        # entry → (valid until, its prices in whole nano-dollars or None: the Decimal path)
        self._exact: dict[ChainEntry, tuple[float, ExactRates | None]] = {}

    def _override(self, entry: ChainEntry) -> PriceOverride | None:
        return self._overrides.get(entry.label) or self._overrides.get(entry.model)

    def _list_usd(self, entry: ChainEntry, usage: Usage) -> Decimal | None:
        """genai-prices' price of ``usage``, or None when it has no complete list price."""
        return self._list.usd(_price_provider(entry), entry.model, usage)

    def check(self, entry: ChainEntry) -> str | None:
        """A one-line problem when ``entry`` cannot be priced, else None."""
        if self._override(entry) is not None or self._list_usd(entry, Usage(1, 0, 1)) is not None:
            return None
        return (
            f'no list price for {entry.label} — set prices."{entry.model}" in config.toml '
            "or pick a known model"
        )

    def prices_searches(self, entry: ChainEntry) -> bool:
        """Whether a web search on ``entry`` has a price: genai-prices lists a search fee for
        the model, or a price override (``settings.prices``) makes the call's cost the user's
        to state. Else a search would be booked as free."""
        if self._override(entry) is not None:
            return True
        fee = self._list_usd(entry, Usage(web_searches=1))
        return fee is not None and fee > 0

    def context_window(self, entry: ChainEntry) -> int | None:
        """The model's input-token window: the override's when it gives one, else genai-prices',
        else None."""
        override = self._override(entry)
        if override is not None and override.context_window is not None:
            return override.context_window
        return self._list.context_window(_price_provider(entry), entry.model)

    def price_nano(self, entry: ChainEntry, usage: Usage) -> int:
        """The cost of ``usage`` on ``entry``, rounded up to whole nano-dollars. Cache reads and
        cache writes (both part of ``usage.input_tokens``) are priced at their own rates; web
        searches at genai-prices' per-search fee (Anthropic: $10 per 1,000), also under a
        token-price override. Raises ``ConfigError`` for a model with no price."""
        exact = self._exact_rates(entry)
        if exact is not None:
            nano = exact.nano(usage)
            if nano is not None:
                return nano
        return self.decimal_price_nano(entry, usage)

    def decimal_price_nano(self, entry: ChainEntry, usage: Usage) -> int:
        """``price_nano`` through ``Decimal`` and genai-prices every time (what the integer fast
        path must equal)."""
        override = self._override(entry)
        usd: Decimal | None
        if override is None:
            usd = self._list_usd(entry, usage)
        else:
            usd = _override_usd(override, usage)
            if usage.web_searches:
                # A model genai-prices does not know has no search fee: its override is all.
                fee = self._list_usd(entry, Usage(web_searches=usage.web_searches))
                usd += fee or Decimal(0)
        if usd is None:
            raise ConfigError([self.check(entry) or f"no list price for {entry.label}"])
        return usd_to_nano(usd)

    def worst_case_nano(
        self,
        entry: ChainEntry,
        input_tokens: int,
        max_tokens: int,
        *,
        cache_writes: bool = False,
        web_searches: int = 0,
    ) -> int:
        """The most a call can cost: all input uncached (or, with ``cache_writes``, all of it
        written to a prompt cache, which costs more), all ``max_tokens`` spent on output, and
        ``web_searches`` searches (the most the call may run) paid for."""
        usage = Usage(
            input_tokens=input_tokens,
            output_tokens=max_tokens,
            cache_write_tokens=input_tokens if cache_writes else 0,
            web_searches=web_searches,
        )
        return self.price_nano(entry, usage)

    def _exact_rates(self, entry: ChainEntry) -> ExactRates | None:
        now = self._clock()
        cached = self._exact.get(entry)
        if cached is not None and now < cached[0]:
            return cached[1]
        list_rates = self._list.flat_rates(_price_provider(entry), entry.model)
        override = self._override(entry)
        if override is not None:
            exact = exact_override_rates(override, list_rates)
        else:
            exact = exact_list_rates(list_rates) if list_rates is not None else None
        self._exact[entry] = (now + _EXACT_TTL_S, exact)
        return exact
