"""Settings: env (``AGENTFIRM_*``) > ``.env`` > ``config.toml`` in the XDG config dir > defaults.

Every component reads configuration from here; nothing else reads the environment (secrets go
through ``SecretStore``). Problems are collected and reported all at once (``ConfigError``).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from agentfirm.errors import ConfigError
from agentfirm.paths import Paths

PROVIDERS = ("anthropic", "openai", "gemini", "openai_compat", "offline")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
ENV_PREFIX = "AGENTFIRM_"

# Environment variables that decide where files live (``Settings.paths``).
_PATH_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")
_SECRET_WORDS = ("key", "token", "secret", "password")
_MASK = "****"
_ERROR_TYPE = "agentfirm_config"

# How to fix each setting, shown after every problem with it.
_HINTS: Mapping[str, str] = {
    "home": "set a directory path",
    "database_url": "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB, or unset it",
    "redis_url": "use redis://HOST:6379/0 or rediss://…, or unset it for the embedded bus",
    "offline": "set true or false",
    "offline_latency_ms": "set N or MIN-MAX milliseconds, such as 0 or 200-800",
    "budget_usd": "set a USD amount such as 5.00",
    "max_concurrency": "set a whole number from 1 to 64",
    "provider_timeout_s": "set seconds from 1 to 900, such as 120",
    "runner": "set one of inproc, notebook, colab, worker",
    "tiers": 'set a list of provider:model, such as ["anthropic:claude-sonnet-4-5"]',
    "prices": "set input_per_mtok and output_per_mtok in USD per million tokens",
    "repo_backend": "set local or github",
    "log_level": "set one of " + ", ".join(LOG_LEVELS),
    "research_escalations": "set a whole number from 0 (no research) to 5",
    "research_tier": "set one of reasoning, execution, utility",
    "quality_revision": "set true or false",
    "slack_mode": "set socket or http",
    "slack_port": "set a port from 1 to 65535, such as 3000",
    "slack_api_url": "use http(s)://HOST/api/, or unset it for https://slack.com/api/",
    "slack_allowed_users": "set Slack user ids separated by commas, such as U012AB3CD,U045EF6GH",
    "slack_allowed_channels": "set Slack channel ids separated by commas, or unset it for any",
}
_DEFAULT_HINT = "fix the value or remove it"

_REASONS: Mapping[str, str] = {
    "decimal_parsing": "is not a number",
    "decimal_type": "is not a number",
    "float_parsing": "is not a number",
    "float_type": "is not a number",
    "finite_number": "is not a finite number",
    "int_parsing": "is not a whole number",
    "int_type": "is not a whole number",
    "int_from_float": "is not a whole number",
    "bool_parsing": "is not true or false",
    "bool_type": "is not true or false",
    "string_type": "is not text",
    "list_type": "is not a list",
    "dict_type": "is not a table",
    "model_type": "is not a table of settings",
    "model_attributes_type": "is not a table of settings",
    "missing": "is missing",
}


def _problem(what: str, hint: str) -> PydanticCustomError:
    # The hint travels in the error context so the formatter can show it after the value.
    return PydanticCustomError(_ERROR_TYPE, what, {"hint": hint})


def _check_chain_entry(entry: str) -> str:
    provider, sep, model = entry.partition(":")
    if not sep or not provider or not model:
        raise _problem(
            "is not provider:model",
            "write it as provider:model, such as anthropic:claude-sonnet-4-5",
        )
    if provider not in PROVIDERS:
        raise _problem(f"names unknown provider {provider!r}", "use one of " + ", ".join(PROVIDERS))
    return entry


# A chain entry is a plain ``str`` to callers; validation checks its shape and provider.
ChainSpec = Annotated[str, AfterValidator(_check_chain_entry)]


def _split_ids(value: object) -> object:
    # ``U1,U2`` is the natural env spelling; TOML gives a list. A JSON list is accepted too: it is
    # how settings are handed to a notebook kernel (handoff/runners.py settings_env).
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                decoded = json.loads(text)
            except ValueError:
                return value
            return decoded
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


# Slack user or channel ids: a comma-separated string in env, a list in TOML.
SlackIds = Annotated[list[str], NoDecode, BeforeValidator(_split_ids)]


def _parse_latency(value: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", value)
    if match is None:
        return None
    low = int(match[1])
    high = int(match[2]) if match[2] is not None else low
    return (low, high) if low <= high else None


class Tiers(BaseModel):
    """Tier → ordered fallback chain of ``provider:model``. Empty → defaults from the providers
    whose keys exist (see ``router.chains.resolve_chains``)."""

    reasoning: list[ChainSpec] = Field(default_factory=list)
    execution: list[ChainSpec] = Field(default_factory=list)
    utility: list[ChainSpec] = Field(default_factory=list)


class PriceOverride(BaseModel):
    """USD per million tokens; overrides genai-prices for one model."""

    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None = None


def _path_env(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env[name] for name in _PATH_VARS if name in env}


def _home_from(env: Mapping[str, str | None]) -> Path | None:
    wanted = (ENV_PREFIX + "HOME").lower()
    for name, value in env.items():
        if name.lower() == wanted and value:
            return Path(value)
    return None


class Settings(BaseSettings):
    """Validated configuration. Build it with ``load_settings``; constructing ``Settings()``
    directly reads ``os.environ`` with the same precedence but stops at the first problem."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", env_file=".env"
    )

    home: Path | None = None
    database_url: str | None = None
    redis_url: str | None = None
    store_cache: bool = True
    """With a Postgres store: serve hot reads from a local SQLite copy under the data dir."""
    offline: bool = False
    offline_latency_ms: str = "0"
    budget_usd: Decimal = Decimal("5.00")
    max_concurrency: int = 4
    provider_timeout_s: float = 120.0
    """How long one provider call may take before it counts as a retryable timeout."""
    runner: Literal["inproc", "notebook", "colab", "worker"] = "inproc"
    tiers: Tiers = Field(default_factory=Tiers)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    repo_backend: Literal["local", "github"] = "local"
    github_owner: str | None = None
    github_api_url: str | None = None
    gemini_base_url: str | None = None
    openai_compat_base_url: str | None = None
    log_level: str = "info"
    research_escalations: int = 1
    """How many times one module may ask for research (``needs_research``) before it must
    answer with what it has; 0 never offers research."""
    research_tier: Literal["reasoning", "execution", "utility"] = "execution"
    """The tier of the research agent's calls."""
    quality_revision: bool = True
    """Whether failing quality checklist items get one automatic revision round (when the
    budget allows it)."""
    slack_mode: Literal["socket", "http"] = "socket"
    slack_host: str = "127.0.0.1"
    """Where HTTP mode listens (behind the TLS proxy Slack calls)."""
    slack_port: int = 3000
    slack_api_url: str | None = None
    """The Slack Web API base (tests point it at a loopback fake)."""
    slack_allowed_users: SlackIds = Field(default_factory=list)
    """Who may start tasks and decide from Slack; ``*`` lets anyone."""
    slack_allowed_channels: SlackIds = Field(default_factory=list)
    """Where the bot takes requests and decisions; empty means any channel it is in."""

    _path_env: dict[str, str] = PrivateAttr(default_factory=lambda: _path_env(os.environ))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Paths.resolve(_home_from(os.environ), os.environ).config_file
        toml_settings = TomlConfigSettingsSource(settings_cls, toml_file=config_file)
        return init_settings, env_settings, dotenv_settings, toml_settings

    @field_validator("budget_usd")
    @classmethod
    def _budget_is_positive(cls, value: Decimal) -> Decimal:
        if not value > 0:
            raise _problem("must be greater than 0", _HINTS["budget_usd"])
        return value

    @field_validator("max_concurrency")
    @classmethod
    def _concurrency_in_range(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise _problem("is outside 1..64", _HINTS["max_concurrency"])
        return value

    @field_validator("research_escalations")
    @classmethod
    def _escalations_in_range(cls, value: int) -> int:
        if not 0 <= value <= 5:
            raise _problem("is outside 0..5", _HINTS["research_escalations"])
        return value

    @field_validator("provider_timeout_s")
    @classmethod
    def _timeout_in_range(cls, value: float) -> float:
        if not 1 <= value <= 900:
            raise _problem("is outside 1..900 seconds", _HINTS["provider_timeout_s"])
        return value

    @field_validator("offline_latency_ms", mode="before")
    @classmethod
    def _latency_accepts_numbers(cls, value: object) -> object:
        # ``offline_latency_ms = 200`` is the natural TOML spelling.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("offline_latency_ms")
    @classmethod
    def _latency_is_range(cls, value: str) -> str:
        if _parse_latency(value) is None:
            raise _problem("is not N or MIN-MAX with MIN <= MAX", _HINTS["offline_latency_ms"])
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _database_url_scheme(cls, value: str | None) -> str | None:
        schemes = ("sqlite:///", "postgresql://", "postgres://")
        if value is not None and not value.startswith(schemes):
            raise _problem("is not a sqlite:/// or postgresql:// URL", _HINTS["database_url"])
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise _problem("is not a redis:// or rediss:// URL", _HINTS["redis_url"])
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level_known(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise _problem("is not a log level", _HINTS["log_level"])
        return value.lower()

    @field_validator("slack_port")
    @classmethod
    def _slack_port_in_range(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise _problem("is outside 1..65535", _HINTS["slack_port"])
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_api_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise _problem("is not an http(s):// URL", _HINTS["slack_api_url"])
        return value

    def latency_range(self) -> tuple[int, int]:
        """Simulated offline latency bounds in milliseconds, ``(N, N)`` for a single value."""
        bounds = _parse_latency(self.offline_latency_ms)
        if bounds is None:  # only reachable when a caller bypassed validation
            value = self.offline_latency_ms
            raise ConfigError([f"offline_latency_ms: {value!r} — {_HINTS['offline_latency_ms']}"])
        return bounds

    @property
    def paths(self) -> Paths:
        """Directories for this configuration: ``home`` if set, else XDG from the env given to
        ``load_settings``."""
        return Paths.resolve(self.home, self._path_env)


# --- loading ------------------------------------------------------------------------------------


class _MappingEnvSource(EnvSettingsSource):
    """``EnvSettingsSource`` over a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given_env = dict(env)  # read by _load_env_vars, which the base __init__ calls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self._given_env)
        return {name.lower(): value for name, value in self._given_env.items()}

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            # Kept as typed so validation reports it against its own setting and source,
            # instead of the whole source failing with one opaque error.
            return value


class _DotEnvSource(DotEnvSettingsSource):
    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            # Kept as typed so validation reports it against its own setting and source,
            # instead of the whole source failing with one opaque error.
            return value


@dataclass(frozen=True)
class _Layer:
    """One source's values and how to name it in a problem."""

    kind: Literal["env", ".env", "toml"]
    data: dict[str, Any]
    var_names: frozenset[str] = frozenset()
    file: Path | None = None
    source: PydanticBaseSettingsSource | None = None  # None when the source could not be read

    def describe(self, keys: list[str]) -> str:
        if self.kind == "toml":
            return str(self.file)
        for size in range(len(keys), 0, -1):
            name = ENV_PREFIX + "__".join(keys[:size]).upper()
            if name.lower() in self.var_names:
                return f"{self.kind} {name}"
        return self.kind


def _contains(data: Mapping[str, Any], keys: list[str]) -> bool:
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


def _where(layers: list[_Layer], loc: tuple[int | str, ...]) -> str | None:
    keys: list[str] = []
    for part in loc:
        if not isinstance(part, str):
            break  # a list is replaced whole, so its source is the list's source
        keys.append(part)
    for size in range(len(keys), 0, -1):
        for layer in layers:
            if _contains(layer.data, keys[:size]):
                return layer.describe(keys[:size])
    return None


def _dotted(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


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


def _describe_error(error: ErrorDetails, layers: list[_Layer]) -> str:
    loc = tuple(error["loc"])
    where = _where(layers, loc)
    ctx = error.get("ctx") or {}
    top = str(loc[0]) if loc else ""
    hint = str(ctx.get("hint") or _HINTS.get(top, _DEFAULT_HINT))
    kind = error["type"]
    if kind == _ERROR_TYPE:
        reason = error["msg"]
    elif kind == "literal_error":
        reason = f"is not one of {ctx.get('expected', '')}"
    else:
        msg = error["msg"]
        reason = _REASONS.get(kind, msg[:1].lower() + msg[1:])
    value = "" if kind == "missing" else _show_value(loc, error["input"]) + " "
    origin = f" ({where})" if where else ""
    return f"{_dotted(loc) or 'settings'}{origin}: {value}{reason} — {hint}"


def _toml_problem(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    message = str(exc)
    match = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
    if match is None:
        return f"config.toml ({path}): invalid TOML: {message} — fix the file's syntax"
    what = message[: match.start()] + message[match.end() :]
    return (
        f"config.toml ({path}:{match[1]}): invalid TOML: {what} — fix the syntax at line "
        f"{match[1]}, column {match[2]}"
    )


def _read_layer(
    kind: Literal["env", ".env"],
    build: Callable[[], EnvSettingsSource],
    file: Path | None,
    problems: list[str],
) -> _Layer:
    label = f"{file}" if file else kind
    try:
        source = build()
        data = source()
    except (SettingsError, OSError, UnicodeDecodeError) as exc:
        problems.append(f"settings ({label}): cannot be read: {exc} — fix or remove it")
        return _Layer(kind, {})
    names = frozenset(str(name).lower() for name in source.env_vars)
    return _Layer(kind, data, names, file, source)


def _read_toml(path: Path, problems: list[str]) -> _Layer:
    try:
        source = TomlConfigSettingsSource(Settings, toml_file=path)
        data = source()
    except tomllib.TOMLDecodeError as exc:
        problems.append(_toml_problem(path, exc))
        return _Layer("toml", {}, file=path)
    except OSError as exc:
        reason = exc.strerror or exc
        problems.append(f"config.toml ({path}): cannot be read: {reason} — fix or remove it")
        return _Layer("toml", {}, file=path)
    for key in data:
        if key not in Settings.model_fields:
            problems.append(
                f"{key} ({path}): unknown setting — remove it or use one of "
                + ", ".join(Settings.model_fields)
            )
    return _Layer("toml", data, file=path, source=source)


def load_settings(env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
    """Load settings from ``env`` (default ``os.environ``), ``cwd/.env`` (default the current
    directory) and ``config.toml`` in the config dir (``$AGENTFIRM_HOME/config`` when set).

    Raises ``ConfigError`` listing every problem found, each naming the setting, its source, the
    bad value (never a secret) and how to fix it."""
    env = os.environ if env is None else env
    dotenv_file = (cwd if cwd is not None else Path.cwd()) / ".env"
    problems: list[str] = []
    env_layer = _read_layer("env", lambda: _MappingEnvSource(Settings, env), None, problems)
    dotenv_layer = _read_layer(
        ".env",
        lambda: _DotEnvSource(Settings, env_file=dotenv_file, dotenv_filtering="only_existing"),
        dotenv_file,
        problems,
    )
    home = _home_from(env)
    if home is None and isinstance(dotenv_layer.data.get("home"), str):
        home = Path(dotenv_layer.data["home"])
    toml_layer = _read_toml(Paths.resolve(home, env).config_file, problems)

    layers = [env_layer, dotenv_layer, toml_layer]  # highest precedence first
    # Passing the sources explicitly keeps pydantic-settings' merge (nested keys deep-merged)
    # while keeping it from reading os.environ and the process's cwd by itself.
    sources = tuple(layer.source for layer in layers if layer.source is not None)
    settings: Settings | None = None
    try:
        settings = Settings(_build_sources=(sources, {}))
    except ValidationError as exc:
        problems.extend(_describe_error(error, layers) for error in exc.errors())
    if problems or settings is None:
        raise ConfigError(problems)
    settings._path_env = _path_env(env)
    return settings


# --- showing ------------------------------------------------------------------------------------


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
