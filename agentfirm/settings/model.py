"""The settings model: every setting with its type, default and check, and the words used to
report a bad value. Loading (env > ``.env`` > ``config.toml`` > defaults) is in ``loading``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from agentfirm.errors import ConfigError
from agentfirm.paths import Paths, home_from
from agentfirm.settings.plain import LOG_LEVELS as LOG_LEVELS
from agentfirm.settings.plain import SCHEMES, parse_latency

PROVIDERS = ("anthropic", "openai", "gemini", "openai_compat", "offline")


ENV_PREFIX = "AGENTFIRM_"


_PATH_VARS = ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")


_ERROR_TYPE = "agentfirm_config"


_HINTS: Mapping[str, str] = {
    "home": "set a directory path",
    "database_url": "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB, or unset it",
    "redis_url": "use redis://HOST:6379/0 or rediss://…, or unset it for the embedded bus",
    "offline": "set true or false",
    "offline_latency_ms": "set N or MIN-MAX milliseconds, such as 0 or 200-800",
    "budget_usd": "set a USD amount such as 5.00",
    "intake_cap_usd": "set a USD amount such as 0.50",
    "max_concurrency": "set a whole number from 1 to 64",
    "provider_timeout_s": "set seconds from 1 to 900, such as 120",
    "cancel_grace_s": "set seconds from 0 to 900, such as 30",
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


ChainSpec = Annotated[str, AfterValidator(_check_chain_entry)]


def _split_ids(value: object) -> object:
    # ``U1,U2`` is the natural env spelling; TOML gives a list. A JSON list is accepted too: it is
    # how settings are handed to a notebook kernel (runs/base.py settings_env).
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


SlackIds = Annotated[list[str], NoDecode, BeforeValidator(_split_ids)]


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
    context_window: int | None = None
    """The model's input-token window, for one genai-prices does not know (a local model):
    a stitch call, and the quality judgement, take at most half of it."""

    @field_validator("context_window")
    @classmethod
    def _window(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            raise _problem(
                "must be greater than 0", "set the model's input window in tokens, such as 131072"
            )
        return value


def _path_env(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env[name] for name in _PATH_VARS if name in env}


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
    intake_cap_usd: Decimal = Decimal("0.50")
    """The ceiling of a task's intake (classification, clarification, planning) when no budget
    was given: with ``--budget`` the intake reserves against that budget, the same ceiling as
    the build."""
    max_concurrency: int = 4
    provider_timeout_s: float = 120.0
    """How long one provider call may take before it counts as a retryable timeout."""
    cancel_grace_s: float = Field(default=30.0, ge=0, le=900)
    """How long a call already sent may still take to answer once its task is aborted or its
    work cancelled: the provider bills it either way, and an answer says for how much (booked
    as reported). Past it the call is cut off and booked at its reservation, an upper bound."""
    openai_store: bool = False
    """Send OpenAI Chat Completions with ``store: true`` and the ledger's call id as metadata,
    so that a call abandoned after it was sent (a killed process, a grace exceeded) is booked
    at what OpenAI recorded for it instead of at its reservation ("≤"): the ledger then equals
    the bill exactly. Off by default: OpenAI keeps stored completions, prompts and answers
    included, under its data retention (30 days unless deleted) and shows them in its dashboard."""
    runner: Literal["inproc", "notebook", "colab", "worker"] = "inproc"
    notebook_requirement: str = ""
    """How a task notebook installs agentfirm instead of the wheel committed with its repo: a
    pinned version from your own index (``agentfirm==0.1.0``) or ``git+https://…``."""
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
    max_turns: int = Field(default=6, ge=1, le=50)
    """Model turns a module's agent loop may take with its tools before it must answer (a
    persona module's ``max_turns`` overrides it)."""
    mcp_config: Path | None = None
    """The ``mcp.json`` listing MCP servers (``AGENTFIRM_MCP_CONFIG``); default: ``mcp.json`` in
    the config dir."""
    mcp_start_timeout_s: float = Field(default=20.0, gt=0, le=600)
    """How long an MCP server may take to start and list its tools before it counts as broken."""
    web_search_tool: str | None = None
    """An MCP tool (``mcp:NAME/TOOL``, e.g. a search server's) that modules given ``web_search``
    also get: the search of models that cannot search themselves (OpenAI models without the
    web search tool, local models)."""
    fetch_allow_private: bool = False
    """Whether ``fetch_url`` may fetch private, loopback and link-local addresses."""
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
        config_file = Paths.resolve(home_from(os.environ), os.environ).config_file
        toml_settings = TomlConfigSettingsSource(settings_cls, toml_file=config_file)
        return init_settings, env_settings, dotenv_settings, toml_settings

    @field_validator("budget_usd", "intake_cap_usd")
    @classmethod
    def _budget_is_positive(cls, value: Decimal, info: ValidationInfo) -> Decimal:
        if not value > 0:
            raise _problem("must be greater than 0", _HINTS[str(info.field_name)])
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
        if parse_latency(value) is None:
            raise _problem("is not N or MIN-MAX with MIN <= MAX", _HINTS["offline_latency_ms"])
        return value.strip()

    @field_validator("database_url")
    @classmethod
    def _database_url_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(SCHEMES):
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
        bounds = parse_latency(self.offline_latency_ms)
        if bounds is None:  # only reachable when a caller bypassed validation
            value = self.offline_latency_ms
            raise ConfigError([f"offline_latency_ms: {value!r} — {_HINTS['offline_latency_ms']}"])
        return bounds

    @property
    def paths(self) -> Paths:
        """Directories for this configuration: ``home`` if set, else XDG from the env given to
        ``load_settings``."""
        return Paths.resolve(self.home, self._path_env)
