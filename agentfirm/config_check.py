"""``agentfirm config check``: everything that can be known wrong before a task runs, reported
at once — chains that name providers without keys, models without a list price."""

from __future__ import annotations

from agentfirm.errors import ConfigError
from agentfirm.router.chains import resolve_chains
from agentfirm.router.pricing import Pricer
from agentfirm.secrets import SecretStore
from agentfirm.settings import Settings


def check(settings: Settings, secrets: SecretStore) -> None:
    """Raise ``ConfigError`` listing every problem; return quietly when all is well."""
    from agentfirm.app import PROVIDER_KEYS, available_providers

    available = available_providers(settings, secrets)
    chains = resolve_chains(settings, available)
    pricer = Pricer(settings.prices)
    problems: list[str] = []
    for tier, chain in chains.items():
        if not chain:
            problems.append(
                f"tiers.{tier}: no provider can serve this tier — set a key "
                "(agentfirm secrets set ANTHROPIC_API_KEY) or run with --offline"
            )
        for entry in chain:
            if entry.provider not in available:
                keys = " or ".join(PROVIDER_KEYS.get(entry.provider, ()))
                problems.append(
                    f"tiers.{tier}: {entry.label} needs a key — set {keys or 'its base URL'}"
                )
            problem = pricer.check(entry)
            if problem:
                problems.append(f"tiers.{tier}: {problem}")
    if problems:
        raise ConfigError(problems)
