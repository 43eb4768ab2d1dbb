"""Provider implementations, one module each; SDKs are imported only inside their own module, and
only when a call is made.

``build_providers`` is the registry: the providers this build can serve, keyed by the name used in
``provider:model`` chain entries."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from agentfirm.router.base import Provider
from agentfirm.router.providers._common import KEY_TTL_S, GetSecret
from agentfirm.router.providers.anthropic import AnthropicProvider
from agentfirm.router.providers.gemini import GeminiProvider
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.settings import Settings

__all__ = [
    "PROVIDER_KEYS",
    "AnthropicProvider",
    "GeminiProvider",
    "GetSecret",
    "OfflineProvider",
    "OpenAIProvider",
    "build_providers",
]

PROVIDER_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "anthropic": ("ANTHROPIC_API_KEY",),
        "openai": ("OPENAI_API_KEY",),
        "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    }
)
"""Which secret makes which provider available (first found wins). ``openai_compat`` needs its
base URL instead; its key (``AGENTFIRM_OPENAI_COMPAT_API_KEY``) is optional."""


def _no_secrets(name: str) -> str | None:
    return None


def build_providers(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    get_secret: GetSecret = _no_secrets,
) -> dict[str, Provider]:
    """Every provider this build can serve with what it has: ``offline`` always; unless
    ``settings.offline``, ``anthropic``, ``openai``, ``gemini`` when ``get_secret`` has one of
    their keys (``PROVIDER_KEYS``) and ``openai_compat`` when ``settings.openai_compat_base_url``
    is set. Each real provider loads its SDK when built.

    ``env`` supplies the SDKs' own endpoint variables (``ANTHROPIC_BASE_URL``,
    ``OPENAI_BASE_URL``); ``get_secret`` (the ``SecretStore``'s ``get``) is kept and asked again
    once a key read is ``KEY_TTL_S`` old (or refused), so a rotated key takes effect without a
    restart."""
    env = env or {}
    providers: dict[str, Provider] = {
        "offline": OfflineProvider(latency_ms=settings.latency_range())
    }
    if settings.offline:
        return providers  # offline serves every tier: no SDK needs loading

    def has_key(provider: str) -> bool:
        return any(get_secret(name) for name in PROVIDER_KEYS[provider])

    if has_key("anthropic"):
        providers["anthropic"] = AnthropicProvider(
            get_secret=get_secret,
            base_url=env.get("ANTHROPIC_BASE_URL") or None,
            key_ttl_s=KEY_TTL_S,
        )
    if has_key("openai"):
        providers["openai"] = OpenAIProvider(
            get_secret=get_secret,
            base_url=env.get("OPENAI_BASE_URL") or None,
            key_ttl_s=KEY_TTL_S,
            store_calls=settings.openai_store,
        )
    if has_key("gemini"):
        providers["gemini"] = GeminiProvider(
            get_secret=get_secret,
            base_url=settings.gemini_base_url or None,
            key_ttl_s=KEY_TTL_S,
        )
    if settings.openai_compat_base_url:
        providers["openai_compat"] = OpenAIProvider.openai_compat(
            get_secret=get_secret, base_url=settings.openai_compat_base_url, key_ttl_s=KEY_TTL_S
        )
    return providers
