"""Settings: env (``AGENTFIRM_*``) > ``.env`` > ``config.toml`` in the XDG config dir > defaults.

Every component reads configuration from here; nothing else reads the environment (secrets go
through ``SecretStore``). Problems are collected and reported all at once (``ConfigError``).
The model is in ``model``, loading in ``loading``, masking for display in ``masking``, and a
read of the few settings a read-only command needs, without pydantic, in ``plain``.

The names below are imported when first used: ``plain``, in this package, must not load the
model (pydantic-settings) that they name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentfirm.settings.loading import load_settings
    from agentfirm.settings.masking import looks_secret, mask_url, masked_dump
    from agentfirm.settings.model import (
        ENV_PREFIX,
        LOG_LEVELS,
        PROVIDERS,
        PriceOverride,
        Settings,
        Tiers,
    )

_WHERE = {
    "load_settings": "loading",
    "looks_secret": "masking",
    "mask_url": "masking",
    "masked_dump": "masking",
    "ENV_PREFIX": "model",
    "LOG_LEVELS": "model",
    "PROVIDERS": "model",
    "PriceOverride": "model",
    "Settings": "model",
    "Tiers": "model",
}

__all__ = [
    "ENV_PREFIX",
    "LOG_LEVELS",
    "PROVIDERS",
    "PriceOverride",
    "Settings",
    "Tiers",
    "load_settings",
    "looks_secret",
    "mask_url",
    "masked_dump",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"agentfirm.settings.{_WHERE[name]}"), name)
