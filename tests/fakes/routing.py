"""Helpers for router tests against the fakes: a funded task on a real store, a router over given
providers, and the list price genai-prices gives for a usage (what a ledger row must show)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal

from agentfirm.domain.models import Task, Tier
from agentfirm.ids import new_id
from agentfirm.money import usd_to_nano
from agentfirm.router.base import Provider
from agentfirm.router.chains import parse_entry
from agentfirm.router.health import Health
from agentfirm.router.pricing import Pricer
from agentfirm.router.router import Router
from agentfirm.store.base import Store

TIERS: tuple[Tier, ...] = ("reasoning", "execution", "utility")
# A provider timeout for calls no hang is scripted for: a loaded machine must still get the fake's
# answer (a first connection can take a good part of a second), and nothing waits it out. Tests
# that script a hang pass a short timeout of their own.
CALL_TIMEOUT_S = 30.0


class Sleeps:
    """A ``sleep`` for the router that returns at once and remembers what it was asked."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


async def funded_task(store: Store, ceiling_nano: int = 10**9) -> str:
    task = Task(id=new_id("t"), request="fake-backed router test")
    await store.create_task(task, actor="test")
    await store.set_budget(task.id, ceiling_nano)
    return task.id


def router_for(
    store: Store,
    providers: Mapping[str, Provider],
    chain: Sequence[str],
    *,
    timeout_s: float = CALL_TIMEOUT_S,
    health: Health | None = None,
    sleep: Sleeps | None = None,
    cancel_grace_s: float = 5.0,
) -> Router:
    """A router whose every tier is ``chain`` (``provider:model`` specs), priced from
    genai-prices, retrying without waiting, with a generous provider timeout unless given one
    (and ``cancel_grace_s`` for a sent call whose caller was cancelled to answer)."""
    entries = [parse_entry(spec) for spec in chain]
    return Router(
        chains={tier: entries for tier in TIERS},
        providers=providers,
        pricer=Pricer(),
        store=store,
        sleep=sleep or Sleeps(),
        timeout_s=timeout_s,
        health=health,
        cancel_grace_s=cancel_grace_s,
    )


def list_price_nano(
    model: str,
    provider_id: str,
    *,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> int:
    """genai-prices' price for this usage (``input_tokens`` is the total, caches included), in
    nano-dollars rounded up — computed here independently of the router's ``Pricer``."""
    from genai_prices import Usage, calc_price

    price = calc_price(
        Usage(
            input_tokens=input_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            output_tokens=output_tokens,
        ),
        model,
        provider_id=provider_id,
    )
    total: Decimal = price.total_price
    return usd_to_nano(total)
