"""Tier → ordered fallback chain of ``provider:model``: the defaults, and how configuration and
offline mode turn them into the chains the router serves."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from agentfirm.domain.models import TIERS, Tier
from agentfirm.errors import ConfigError
from agentfirm.router.base import ChainEntry
from agentfirm.settings import Settings

OFFLINE = "offline"

DEFAULT_CHAINS: Mapping[Tier, tuple[str, ...]] = MappingProxyType(
    {
        "reasoning": (
            "anthropic:claude-opus-4-6",
            "openai:gpt-5",
            "gemini:gemini-2.5-pro",
        ),
        "execution": (
            "anthropic:claude-sonnet-4-6",
            "openai:gpt-5-mini",
            "gemini:gemini-2.5-flash",
        ),
        "utility": (
            "anthropic:claude-haiku-4-5",
            "openai:gpt-5-nano",
            "gemini:gemini-2.5-flash-lite",
        ),
    }
)
"""Best first. Used for a tier that ``settings.tiers`` leaves empty, filtered to the providers
that have keys."""


def parse_entry(spec: str) -> ChainEntry:
    """``"provider:model"`` → ``ChainEntry``. The model may itself contain colons."""
    provider, sep, model = spec.strip().partition(":")
    if not sep or not provider or not model:
        raise ConfigError(
            [f"{spec!r} is not provider:model — write it as e.g. anthropic:claude-sonnet-4-5"]
        )
    return ChainEntry(provider, model)


def _configured(settings: Settings, tier: Tier) -> list[ChainEntry]:
    specs: list[str] = getattr(settings.tiers, tier)
    return [parse_entry(spec) for spec in specs]


def _offline_entry(entry: ChainEntry) -> ChainEntry:
    if entry.provider == OFFLINE:
        return entry
    # Simulate the model the tier would use, priced as its real provider.
    return ChainEntry(OFFLINE, entry.model, price_as=entry.provider)


def resolve_chains(settings: Settings, available: set[str]) -> dict[Tier, list[ChainEntry]]:
    """The chain for every tier.

    Configured tiers win as written (whether their providers have keys is ``config check``'s
    business); an unconfigured tier gets the default entries whose provider is in ``available``.
    With ``settings.offline`` every tier is served by the offline provider alone, simulating the
    first entry of the configured (else default) chain so costs are that model's list price."""
    chains: dict[Tier, list[ChainEntry]] = {}
    for tier in TIERS:
        configured = _configured(settings, tier)
        if settings.offline:
            first = configured[0] if configured else parse_entry(DEFAULT_CHAINS[tier][0])
            chains[tier] = [_offline_entry(first)]
        elif configured:
            chains[tier] = configured
        else:
            defaults = (parse_entry(spec) for spec in DEFAULT_CHAINS[tier])
            chains[tier] = [entry for entry in defaults if entry.provider in available]
    return chains
