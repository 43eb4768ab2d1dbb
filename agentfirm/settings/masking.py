"""Showing settings without their secrets: which keys look secret, URLs with their passwords
masked, and the masked dump ``config show`` prints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentfirm.settings.model import Settings

_SECRET_WORDS = ("key", "token", "secret", "password")


_MASK = "****"


def looks_secret(key: str) -> bool:
    """Whether a setting or field name suggests its value is a secret."""
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def mask_url(url: str) -> str:
    """``scheme://user:PASSWORD@host/…`` → ``scheme://user:****@host/…``; other text unchanged."""
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    if not sep or at < 0:
        return url
    # Splitting at the last '@' can over-mask a URL with '@' in its path; never under-mask.
    user, colon, _password = rest[:at].partition(":")
    return f"{scheme}://{user}:{_MASK}@{rest[at + 1 :]}" if colon else url


def _show_value(keys: tuple[int | str, ...], value: Any) -> str:
    if any(isinstance(k, str) and looks_secret(k) for k in keys):
        return _MASK
    if isinstance(value, str):
        text = repr(mask_url(value))
    elif isinstance(value, bool | int | float | Decimal):
        text = str(value)
    else:
        text = json.dumps(_mask_tree(value), default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def _mask_tree(value: Any, key: str = "") -> Any:
    if key and looks_secret(key) and value not in (None, ""):
        return _MASK
    if isinstance(value, Mapping):
        return {str(k): _mask_tree(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_tree(item) for item in value]
    if isinstance(value, str):
        return mask_url(value)
    return value


def masked_dump(settings: Settings) -> dict[str, object]:
    """Settings as JSON-able data for ``config show``: values under secret-looking keys become
    ``'****'``, URL passwords are masked, and the resolved ``paths`` are included."""
    data = settings.model_dump(mode="json")
    paths = settings.paths
    data["paths"] = {
        "config_dir": str(paths.config_dir),
        "data_dir": str(paths.data_dir),
        "state_dir": str(paths.state_dir),
        "runtime_dir": str(paths.runtime_dir),
        "config_file": str(paths.config_file),
        "log_path": str(paths.log_path),
    }
    masked: dict[str, object] = _mask_tree(data)
    return masked
