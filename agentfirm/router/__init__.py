"""The Model Router: tiers, fallback chains, pricing, budget reservation and the ledger.

Build one with ``build_router``; call it with ``await router.call(tier=…, messages=…, …)``."""

from __future__ import annotations

from collections.abc import Callable

from agentfirm.router.chains import resolve_chains
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers import build_providers
from agentfirm.router.router import Router
from agentfirm.settings import Settings
from agentfirm.store.base import Store

__all__ = ["Router", "build_router"]


def build_router(
    settings: Settings,
    store: Store,
    *,
    available: set[str],
    redact: Callable[[str], str] = lambda s: s,
) -> Router:
    """The router ``settings`` describe. ``available`` is the set of providers with keys (the
    caller asks the secret store); it is ignored offline, where the offline provider serves every
    tier. Raises ``ConfigError`` when a chain names a provider this build does not implement."""
    chains = resolve_chains(settings, {"offline"} if settings.offline else available)
    return Router(
        chains=chains,
        providers=build_providers(settings),
        pricer=Pricer(settings.prices),
        store=store,
        redact=redact,
    )
