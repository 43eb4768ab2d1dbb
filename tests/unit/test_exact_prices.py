"""The router's integer pricing must give exactly what the Decimal path gives — list prices,
overrides, cache reads and writes, web searches, tiered models — and step aside where it cannot."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfirm.errors import ConfigError
from agentfirm.router.base import ChainEntry, Usage
from agentfirm.router.chains import DEFAULT_CHAINS, parse_entry
from agentfirm.router.pricing import Pricer
from agentfirm.settings import PriceOverride

DEFAULT_ENTRIES = sorted(
    {parse_entry(spec) for chain in DEFAULT_CHAINS.values() for spec in chain},
    key=lambda e: e.label,
)
OTHER_ENTRIES = [
    ChainEntry("anthropic", "claude-sonnet-4-5"),
    ChainEntry("anthropic", "claude-3-5-haiku-latest"),
    ChainEntry("openai", "gpt-4o-mini"),
    ChainEntry("gemini", "gemini-1.5-pro"),  # tiered: the Decimal path
    ChainEntry("offline", "claude-sonnet-4-6"),  # priced as Anthropic's
    ChainEntry("ollama", "llama3.1:8b"),  # no list price: overridden below, or refused
]
OVERRIDDEN = {
    "llama3.1:8b": PriceOverride(input_per_mtok=Decimal("0.1"), output_per_mtok=Decimal("0.3")),
    # Finer than a nano-dollar per million tokens: the Decimal path.
    "gpt-4o-mini": PriceOverride(
        input_per_mtok=Decimal("0.1500000001"),
        output_per_mtok=Decimal("0.6"),
        cached_input_per_mtok=Decimal("0.075"),
    ),
    # Fractions of a nano-dollar per token: rounding up matters.
    "claude-3-5-haiku-latest": PriceOverride(
        input_per_mtok=Decimal("0.800000501"),
        output_per_mtok=Decimal("4.000000007"),
        cached_input_per_mtok=Decimal("0.080000333"),
    ),
    "anthropic:claude-sonnet-4-5": PriceOverride(
        input_per_mtok=Decimal("2.5"), output_per_mtok=Decimal("12.5")
    ),
}


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    total = draw(st.integers(0, 400_000))
    cached = draw(st.integers(0, total + 5))  # now and then more than the input: step aside
    written = draw(st.integers(0, max(total - cached, 0) + 5))
    return Usage(
        input_tokens=total,
        cached_input_tokens=cached,
        output_tokens=draw(st.integers(0, 64_000)),
        cache_write_tokens=written,
        web_searches=draw(st.sampled_from([0, 0, 1, 3])),
    )


def priced(pricer: Pricer, entry: ChainEntry, usage: Usage, *, exact: bool) -> int | str:
    try:
        if exact:
            return pricer.price_nano(entry, usage)
        return pricer.decimal_price_nano(entry, usage)
    except (ConfigError, ValueError) as err:  # ValueError: genai-prices refuses the counts
        return f"{type(err).__name__}: {err}"


@pytest.fixture(scope="module", params=[{}, OVERRIDDEN], ids=["list", "overridden"])
def pricer(request: pytest.FixtureRequest) -> Pricer:
    # Shared across examples, as one router's pricer is across calls: its cache must not drift.
    return Pricer(request.param)


@settings(max_examples=400, deadline=None)
@given(entry=st.sampled_from(DEFAULT_ENTRIES + OTHER_ENTRIES), usage=usages())
def test_integer_price_is_exactly_the_decimal_price(
    pricer: Pricer, entry: ChainEntry, usage: Usage
) -> None:
    assert priced(pricer, entry, usage, exact=True) == priced(pricer, entry, usage, exact=False)


TIERED = {"gemini:gemini-2.5-pro"}  # a higher price past 200k input tokens: the Decimal path


@pytest.mark.parametrize("entry", DEFAULT_ENTRIES, ids=lambda e: e.label)
def test_every_default_model_with_flat_prices_is_priced_in_integers(entry: ChainEntry) -> None:
    assert (Pricer()._exact_rates(entry) is None) == (entry.label in TIERED)


def test_a_price_finer_than_a_nano_dollar_keeps_the_decimal_path() -> None:
    pricer = Pricer(OVERRIDDEN)
    assert pricer._exact_rates(ChainEntry("openai", "gpt-4o-mini")) is None
    assert pricer._exact_rates(ChainEntry("ollama", "llama3.1:8b")) is not None


def test_prices_are_looked_up_again_after_a_minute() -> None:
    now = [0.0]
    pricer = Pricer(clock=lambda: now[0])
    entry = ChainEntry("anthropic", "claude-sonnet-4-6")
    first = pricer._exact_rates(entry)
    assert first is not None
    pricer._list.flat_rates = lambda provider_id, model: None  # type: ignore[method-assign]

    now[0] = 59.0
    assert pricer._exact_rates(entry) is first
    now[0] = 61.0
    assert pricer._exact_rates(entry) is None
