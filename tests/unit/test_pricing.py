"""Pricing: genai-prices list prices, config overrides, and no silent $0."""

from __future__ import annotations

from decimal import Decimal

import pytest
from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from agentfirm.errors import ConfigError
from agentfirm.money import usd_to_nano
from agentfirm.router.base import ChainEntry, Usage
from agentfirm.router.pricing import Pricer
from agentfirm.settings import PriceOverride

SONNET = ChainEntry("anthropic", "claude-sonnet-4-5")


def _list_nano(model: str, provider_id: str, usage: Usage) -> int:
    price = calc_price(
        PriceUsage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cached_input_tokens,
            output_tokens=usage.output_tokens,
        ),
        model,
        provider_id=provider_id,
    )
    return usd_to_nano(price.total_price)


def _override(inp: str, out: str, cached: str | None = None) -> PriceOverride:
    return PriceOverride(
        input_per_mtok=Decimal(inp),
        output_per_mtok=Decimal(out),
        cached_input_per_mtok=None if cached is None else Decimal(cached),
    )


def test_known_model_costs_what_genai_prices_says_including_cached_tokens() -> None:
    usage = Usage(input_tokens=12_000, cached_input_tokens=5_000, output_tokens=3_000)

    assert Pricer().price_nano(SONNET, usage) == _list_nano("claude-sonnet-4-5", "anthropic", usage)


def test_cached_input_tokens_cost_less_than_uncached_ones() -> None:
    pricer = Pricer()
    cached = pricer.price_nano(SONNET, Usage(input_tokens=10_000, cached_input_tokens=10_000))
    uncached = pricer.price_nano(SONNET, Usage(input_tokens=10_000))

    assert 0 < cached < uncached


def test_gemini_entries_use_googles_list_price() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    entry = ChainEntry("gemini", "gemini-2.5-flash")

    assert Pricer().price_nano(entry, usage) == _list_nano("gemini-2.5-flash", "google", usage)


def test_offline_entry_is_priced_as_the_provider_it_simulates() -> None:
    usage = Usage(input_tokens=1_000, output_tokens=1_000)
    entry = ChainEntry("offline", "gpt-5-mini", price_as="openai")

    assert Pricer().price_nano(entry, usage) == _list_nano("gpt-5-mini", "openai", usage)


@pytest.mark.parametrize(
    ("model", "provider_id"),
    [("claude-haiku-4-5", "anthropic"), ("gpt-5-nano", "openai"), ("gemini-2.5-pro", "google")],
)
def test_offline_entry_without_price_as_is_priced_by_its_model_family(
    model: str, provider_id: str
) -> None:
    usage = Usage(input_tokens=2_000, output_tokens=500)

    assert Pricer().price_nano(ChainEntry("offline", model), usage) == _list_nano(
        model, provider_id, usage
    )


def test_override_wins_over_the_list_price() -> None:
    pricer = Pricer({"claude-sonnet-4-5": _override("1", "2", cached="0.5")})
    usage = Usage(input_tokens=3_000, cached_input_tokens=1_000, output_tokens=4_000)

    # 2000 × $1 + 1000 × $0.5 + 4000 × $2 per million tokens = $0.0105
    assert pricer.price_nano(SONNET, usage) == 10_500_000


def test_override_by_provider_model_label_wins_over_one_by_model_name() -> None:
    pricer = Pricer(
        {
            "claude-sonnet-4-5": _override("1", "1"),
            "anthropic:claude-sonnet-4-5": _override("2", "2"),
        }
    )

    assert pricer.price_nano(SONNET, Usage(input_tokens=1_000_000)) == 2_000_000_000


def test_override_without_a_cached_rate_prices_cached_tokens_at_the_input_rate() -> None:
    pricer = Pricer({"claude-sonnet-4-5": _override("3", "15")})

    assert pricer.price_nano(SONNET, Usage(input_tokens=1_000, cached_input_tokens=1_000)) == (
        pricer.price_nano(SONNET, Usage(input_tokens=1_000))
    )


def test_cost_is_rounded_up_to_a_whole_nano_dollar() -> None:
    pricer = Pricer({"tiny": _override("0.0015", "0")})

    # one token at $0.0015 per million is 1.5 nano-dollars
    assert pricer.price_nano(ChainEntry("anthropic", "tiny"), Usage(input_tokens=1)) == 2


def test_unknown_model_is_reported_with_how_to_fix_it() -> None:
    problem = Pricer().check(ChainEntry("anthropic", "claude-nope"))

    assert problem is not None
    assert "anthropic:claude-nope" in problem
    assert 'prices."claude-nope"' in problem


def test_unknown_model_is_refused_instead_of_priced_at_zero() -> None:
    with pytest.raises(ConfigError, match="claude-nope"):
        Pricer().price_nano(ChainEntry("anthropic", "claude-nope"), Usage(input_tokens=10))


def test_unknown_provider_is_reported_as_unpriceable() -> None:
    assert Pricer().check(ChainEntry("openai_compat", "llama3")) is not None


def test_unknown_model_with_an_override_is_priceable() -> None:
    pricer = Pricer({"llama3": _override("0.1", "0.2")})
    entry = ChainEntry("openai_compat", "llama3")

    assert pricer.check(entry) is None
    assert pricer.price_nano(entry, Usage(output_tokens=1_000_000)) == 200_000_000


def test_known_model_has_no_problem() -> None:
    assert Pricer().check(SONNET) is None


def test_worst_case_is_all_input_uncached_plus_every_output_token() -> None:
    pricer = Pricer()

    assert pricer.worst_case_nano(SONNET, 1_000, 2_048) == pricer.price_nano(
        SONNET, Usage(input_tokens=1_000, output_tokens=2_048)
    )
