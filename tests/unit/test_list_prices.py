"""Prepared list prices: the router's fast path must give exactly genai-prices' answer, for every
model a default chain uses and across price tiers, and step aside where it cannot."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfirm.router.base import Usage
from agentfirm.router.chains import DEFAULT_CHAINS
from agentfirm.router.list_prices import ListPrices

_PRICE_PROVIDER = {"gemini": "google"}
DEFAULT_MODELS = sorted(
    {
        (_PRICE_PROVIDER.get(provider, provider), model)
        for chain in DEFAULT_CHAINS.values()
        for provider, _, model in (spec.partition(":") for spec in chain)
    }
)
# Older and tiered models people configure, beside the defaults.
OTHER_MODELS = [
    ("anthropic", "claude-sonnet-4-5"),
    ("anthropic", "claude-3-5-haiku-latest"),
    ("openai", "gpt-4o-mini"),
    ("openai", "o3"),
    ("google", "gemini-1.5-pro"),
]


def genai_usd(provider_id: str, model: str, usage: Usage) -> Decimal:
    result = calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
        ),
        model,
        provider_id=provider_id,
    )
    total: Decimal = result.total_price
    return total


@st.composite
def usages(draw: st.DrawFn) -> Usage:
    # Up to past the 200k-token tiers of the long-context models.
    total = draw(st.integers(0, 400_000))
    cached = draw(st.integers(0, total))
    written = draw(st.integers(0, total - cached))
    return Usage(total, cached, draw(st.integers(0, 64_000)), written)


@pytest.mark.parametrize(("provider_id", "model"), DEFAULT_MODELS)
def test_every_default_model_is_priced_by_prepared_rates(provider_id: str, model: str) -> None:
    assert ListPrices().fast(provider_id, model)


@settings(max_examples=300, deadline=None)
@given(
    target=st.sampled_from(DEFAULT_MODELS + OTHER_MODELS),
    usage=usages(),
)
def test_prepared_price_is_exactly_genai_prices(
    prices: ListPrices, target: tuple[str, str], usage: Usage
) -> None:
    provider_id, model = target

    assert prices.usd(provider_id, model, usage) == genai_usd(provider_id, model, usage)


@pytest.fixture(scope="module")
def prices() -> ListPrices:
    # Shared across examples, as one router's pricer is across calls: the cache must not drift.
    return ListPrices()


def test_a_per_request_fee_keeps_the_model_on_genai_prices() -> None:
    prices = ListPrices()
    usage = Usage(input_tokens=1_000, output_tokens=500)

    assert not prices.fast("perplexity", "sonar")
    assert prices.usd("perplexity", "sonar", usage) == genai_usd("perplexity", "sonar", usage)


def test_an_unknown_model_has_no_list_price() -> None:
    assert ListPrices().usd("anthropic", "claude-nonexistent-9", Usage(1, 0, 1)) is None
