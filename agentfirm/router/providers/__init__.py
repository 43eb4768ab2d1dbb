"""Provider implementations, one module each; SDKs are imported only inside their own module.

``build_providers`` is the registry: the providers this build can serve, keyed by the name used in
``provider:model`` chain entries."""

from __future__ import annotations

from agentfirm.router.base import Provider
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.settings import Settings

__all__ = ["OfflineProvider", "build_providers"]


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Every provider implemented in this build, configured from ``settings``."""
    return {"offline": OfflineProvider(latency_ms=settings.latency_range())}
