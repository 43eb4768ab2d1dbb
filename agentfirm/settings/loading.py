"""Loading settings: env (``AGENTFIRM_*``) > ``.env`` > ``config.toml`` in the config dir >
defaults, each layer read on its own so every problem names the setting, its source and the fix,
and all problems are reported at once (``ConfigError``)."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    ValidationError,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsError,
    TomlConfigSettingsSource,
)

from agentfirm.errors import ConfigError
from agentfirm.paths import Paths, home_from
from agentfirm.settings.masking import _show_value
from agentfirm.settings.model import (
    _DEFAULT_HINT,
    _ERROR_TYPE,
    _HINTS,
    _REASONS,
    ENV_PREFIX,
    Settings,
    _path_env,
)


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
    except UnicodeDecodeError as exc:
        problems.append(
            f"config.toml ({path}): is not UTF-8 text (byte {exc.start}) — save it as UTF-8"
        )
        return _Layer("toml", {}, file=path)
    for key in data:
        if key not in Settings.model_fields:
            problems.append(
                f"{key} ({path}): unknown setting — remove it or use one of "
                + ", ".join(Settings.model_fields)
            )
    return _Layer("toml", data, file=path, source=source)


def _absent(path: Path) -> bool:
    """Whether ``path`` does not exist (a file that cannot be looked at is left to its source,
    which says why)."""
    try:
        path.stat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


def load_settings(env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Settings:
    """Load settings from ``env`` (default ``os.environ``), ``cwd/.env`` (default the current
    directory) and ``config.toml`` in the config dir (``$AGENTFIRM_HOME/config`` when set).

    Raises ``ConfigError`` listing every problem found, each naming the setting, its source, the
    bad value (never a secret) and how to fix it."""
    env = os.environ if env is None else env
    dotenv_file = (cwd if cwd is not None else Path.cwd()) / ".env"
    problems: list[str] = []
    env_layer = _read_layer("env", lambda: _MappingEnvSource(Settings, env), None, problems)
    # A file that is not there adds nothing; reading it through its source would still walk
    # every setting (most of the time a command spends loading settings).
    dotenv_layer = (
        _Layer(".env", {}, file=dotenv_file)
        if _absent(dotenv_file)
        else _read_layer(
            ".env",
            lambda: _DotEnvSource(Settings, env_file=dotenv_file, dotenv_filtering="only_existing"),
            dotenv_file,
            problems,
        )
    )
    home = home_from(env)
    if home is None and isinstance(dotenv_layer.data.get("home"), str):
        home = Path(dotenv_layer.data["home"])
    config_file = Paths.resolve(home, env).config_file
    toml_layer = (
        _Layer("toml", {}, file=config_file)
        if _absent(config_file)
        else _read_toml(config_file, problems)
    )

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
