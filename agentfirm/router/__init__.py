"""The Model Router: tiers, fallback chains, health, pricing, budget reservation and the ledger.

Build one with ``build_router``; call it with ``await router.call(tier=…, messages=…, …)``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from agentfirm.domain.calls import InFlight
from agentfirm.router.base import Notify, notify_nobody
from agentfirm.router.chains import resolve_chains
from agentfirm.router.health import BreakerPolicy, Health
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers import GetSecret, build_providers
from agentfirm.router.router import Router
from agentfirm.settings import Settings
from agentfirm.store.base import Store

__all__ = ["BreakerPolicy", "Health", "Router", "build_router"]


def _no_secrets(name: str) -> str | None:
    return None


def build_router(
    settings: Settings,
    store: Store,
    *,
    available: set[str] | None = None,
    redact: Callable[[str], str] = lambda s: s,
    env: Mapping[str, str] | None = None,
    get_secret: GetSecret = _no_secrets,
    health: Health | None = None,
    timeout_s: float = 120.0,
    notify: Notify = notify_nobody,
    in_flight: InFlight | None = None,
) -> Router:
    """The router ``settings`` describe.

    ``get_secret`` (the ``SecretStore``'s ``get``) decides which real providers are registered
    (those with a key) and is asked again on every call, so key rotation needs no restart;
    ``env`` supplies ``ANTHROPIC_BASE_URL`` / ``OPENAI_BASE_URL``. ``available`` is the set of
    providers default chains may use (default: the providers registered); it is ignored offline,
    where the offline provider serves every tier. Raises ``ConfigError`` when a chain names a
    provider this build cannot serve (not implemented, or no key). ``notify`` (``Bus.publish``)
    hears of overruns and refused keys; ``in_flight`` counts the requests on their way."""
    providers = build_providers(settings, env, get_secret)
    usable = set(providers) if available is None else available
    chains = resolve_chains(settings, {"offline"} if settings.offline else usable)
    return Router(
        chains=chains,
        providers=providers,
        pricer=Pricer(settings.prices),
        store=store,
        redact=redact,
        health=health,
        timeout_s=timeout_s,
        notify=notify,
        cancel_grace_s=settings.cancel_grace_s,
        in_flight=in_flight,
    )
