"""Settings for a command that only reads (``tasks list``, ``costs ID`` in-process), read without
pydantic: loading pydantic-settings and building the settings model cost more than importing
typer, for the two or three settings such a read uses.

``read_plainly`` reads the same sources in the same order as ``load_settings`` (env
``AGENTFIRM_*`` > ``.env`` > ``config.toml`` > defaults), and answers only when it can vouch for
every value given: each is of a form the settings model surely accepts, as it would read it.
Anything else — a ``.env`` file, a nested or list setting, a value of another form, a value out
of range — gives None, and the caller loads the settings in full: so a bad setting is still
reported by ``load_settings``, in its own words, exit 2, and a read never runs on settings the
model would refuse. A test checks this against the model for every setting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from agentfirm.paths import Paths, home_from

ENV_PREFIX = "agentfirm_"
SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
"""What ``database_url`` may start with (the model's check reads this)."""
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def parse_latency(value: str) -> tuple[int, int] | None:
    """``offline_latency_ms`` (``N`` or ``MIN-MAX``) as bounds, None when it is neither."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
    if match is None:
        return None
    low = int(match[1])
    high = int(match[2]) if match[2] is not None else low
    return (low, high) if low <= high else None


class _Unsure(Exception):
    """A value ``read_plainly`` cannot vouch for: the settings model must judge it."""


Check = Callable[[object], object]
"""A setting's value as given (env text, or a TOML value) → the value the model makes of it;
``_Unsure`` when the model might see it otherwise."""

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_DIGITS = re.compile(r"[0-9]{1,9}")
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _Unsure
    return value


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise _Unsure


def _number(value: object) -> float:
    if isinstance(value, bool):
        raise _Unsure
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return float(value)
    raise _Unsure


def _whole(low: int, high: int) -> Check:
    def check(value: object) -> int:
        if isinstance(value, bool):
            raise _Unsure
        if isinstance(value, str) and _DIGITS.fullmatch(value):
            value = int(value)
        if isinstance(value, int) and low <= value <= high:
            return value
        raise _Unsure

    return check


def _seconds(low: float, high: float, *, low_open: bool = False) -> Check:
    def check(value: object) -> float:
        seconds = _number(value)
        if (low < seconds if low_open else low <= seconds) and seconds <= high:
            return seconds
        raise _Unsure

    return check


def _usd(value: object) -> Decimal:
    amount = _number(value)
    if amount > 0:
        return Decimal(str(value))
    raise _Unsure


def _one_of(*names: str) -> Check:
    def check(value: object) -> str:
        if value in names:
            return str(value)
        raise _Unsure

    return check


def _starting(*prefixes: str) -> Check:
    def check(value: object) -> str:
        text = _text(value)
        if text.startswith(prefixes):
            return text
        raise _Unsure

    return check


def _latency(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(value)
    if parse_latency(text) is None:
        raise _Unsure
    return text.strip()


def _log_level(value: object) -> str:
    level = _text(value).lower()
    if level not in LOG_LEVELS:
        raise _Unsure
    return level


def _path(value: object) -> Path:
    return Path(_text(value))


def _never(value: object) -> object:
    raise _Unsure  # a table or a list: the model reads those


CHECKS: Mapping[str, Check] = {
    "home": _path,
    "database_url": _starting(*SCHEMES),
    "redis_url": _starting("redis://", "rediss://"),
    "store_cache": _flag,
    "offline": _flag,
    "offline_latency_ms": _latency,
    "budget_usd": _usd,
    "intake_cap_usd": _usd,
    "max_concurrency": _whole(1, 64),
    "provider_timeout_s": _seconds(1, 900),
    "cancel_grace_s": _seconds(0, 900),
    "openai_store": _flag,
    "runner": _one_of("inproc", "notebook", "colab", "worker"),
    "notebook_requirement": _text,
    "tiers": _never,
    "prices": _never,
    "repo_backend": _one_of("local", "github"),
    "github_owner": _text,
    "github_api_url": _text,
    "gemini_base_url": _text,
    "openai_compat_base_url": _text,
    "log_level": _log_level,
    "research_escalations": _whole(0, 5),
    "research_tier": _one_of("reasoning", "execution", "utility"),
    "max_turns": _whole(1, 50),
    "mcp_config": _path,
    "mcp_start_timeout_s": _seconds(0, 600, low_open=True),
    "web_search_tool": _text,
    "fetch_allow_private": _flag,
    "quality_revision": _flag,
    "slack_mode": _one_of("socket", "http"),
    "slack_host": _text,
    "slack_port": _whole(1, 65535),
    "slack_api_url": _starting("http://", "https://"),
    "slack_allowed_users": _never,
    "slack_allowed_channels": _never,
}
"""Every setting of the model (a test keeps the two lists equal), and how to vouch for it."""


@dataclass(frozen=True)
class ReadSettings:
    """What a read needs of the settings: where the files are and which store holds the data."""

    home: Path | None
    database_url: str | None
    path_env: Mapping[str, str]

    @property
    def paths(self) -> Paths:
        """As ``Settings.paths``."""
        return Paths.resolve(self.home, self.path_env)


def _toml(text: str) -> dict[str, object]:
    if not text:
        return {}
    import tomllib  # only for a config file: its parser costs a tenth of importing typer

    return tomllib.loads(text)


def read_plainly(env: Mapping[str, str], *, cwd: Path | None = None) -> ReadSettings | None:
    """The settings a read needs from ``env``, ``cwd/.env`` and ``config.toml``, or None when
    ``load_settings`` must read them (see the module's docstring)."""
    if (cwd if cwd is not None else Path.cwd()).joinpath(".env").exists():
        return None
    values: dict[str, object] = {}
    try:
        for name, value in env.items():
            lowered = name.lower()
            if not lowered.startswith(ENV_PREFIX):
                continue
            key = lowered.removeprefix(ENV_PREFIX)
            field = key.split("__", 1)[0]
            if field not in CHECKS:
                continue  # not a setting: the model ignores it too
            if key != field or field in values:
                return None  # a nested value, or one given twice in different cases
            values[field] = CHECKS[field](value)
        config = Paths.resolve(home_from(env), env).config_file
        try:
            text = config.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        for field, given in _toml(text).items():
            if field not in CHECKS:
                return None  # the model reports it
            checked = CHECKS[field](given)
            values.setdefault(field, checked)  # the environment wins
    except (_Unsure, OSError, ValueError):  # UnicodeDecodeError and TOMLDecodeError are too
        return None
    home = values.get("home")
    url = values.get("database_url")
    return ReadSettings(
        home=home if isinstance(home, Path) else None,
        database_url=url if isinstance(url, str) else None,
        path_env=dict(env),
    )
