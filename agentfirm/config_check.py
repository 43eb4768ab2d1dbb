"""``agentfirm config check``: everything that can be known wrong before a task runs, reported
at once — chains that name providers without keys, models without a list price."""

from __future__ import annotations

from agentfirm.errors import ConfigError
from agentfirm.router.chains import resolve_chains
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers import PROVIDER_KEYS
from agentfirm.secrets import SecretStore
from agentfirm.settings import Settings


def available_providers(settings: Settings, secrets: SecretStore) -> set[str]:
    """Providers that can serve calls: those with a key, an OpenAI-compatible server when its base
    URL is set, and ``offline`` always."""
    available = {"offline"}
    for provider, names in PROVIDER_KEYS.items():
        if any(secrets.get(name) for name in names):
            available.add(provider)
    if settings.openai_compat_base_url:
        available.add("openai_compat")
    return available


def check(settings: Settings, secrets: SecretStore) -> None:
    """Raise ``ConfigError`` listing every problem; return quietly when all is well."""
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
