"""``settings.plain`` answers only where the settings model would accept the same sources, and
then with the values the model makes: a read in-process never runs on settings ``load_settings``
would refuse, and a bad setting is still reported in the model's words."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfirm.errors import ConfigError
from agentfirm.settings import Settings, load_settings
from agentfirm.settings.plain import CHECKS, read_plainly

TEXTS = (
    "", " ", "0", "1", "-1", "5", "05", "+5", " 5", "5_0", "64", "65", "900", "901", "1.5", "1e3",
    "0.0", "nan", "inf", "true", "TRUE", "yes", "maybe", "off", "200-800", "800-200", " 3 ",
    "inproc", "worker", "Worker", "github", "socket", "http", "execution", "INFO", "loud",
    "sqlite:///x.db", "postgresql://u@h/d", "mysql://h", "redis://h:6379/0", "http://h/api/",
    "U1,U2", '["U1"]', '{"a": 1}', "[]", "anthropic:claude-sonnet-4-5",
)  # fmt: skip
TOML_VALUES = (
    "5", "0", "-3", "1.5", "true", "false", '"5"', '"info"', '"200-800"', "200", "[1]", "{a = 1}",
    '"sqlite:///x.db"', '"postgres://h/d"', '"http://h/"', "1e400", "nan",
)  # fmt: skip


def test_every_setting_of_the_model_is_known() -> None:
    assert list(CHECKS) == list(Settings.model_fields)


def _full(env: dict[str, str], cwd: Path) -> Settings | None:
    try:
        return load_settings(env, cwd=cwd)
    except ConfigError:
        return None


def _agree(env: dict[str, str], cwd: Path) -> None:
    plain = read_plainly(env, cwd=cwd)
    full = _full(env, cwd)
    if plain is None:
        return  # the model decides: nothing to compare
    assert full is not None, f"plain read vouched for settings the model refuses: {env}"
    assert (plain.home, plain.database_url) == (full.home, full.database_url)
    assert plain.paths == full.paths


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.dictionaries(st.sampled_from(list(CHECKS)), st.sampled_from(TEXTS), max_size=3),
    upper=st.booleans(),
)
def test_env_values_are_vouched_for_only_where_the_model_accepts_them(
    tmp_path: Path, values: dict[str, str], upper: bool
) -> None:
    env = {"AGENTFIRM_HOME": str(tmp_path / "home")}
    for field, value in values.items():
        env[f"AGENTFIRM_{field.upper()}" if upper else f"agentfirm_{field}"] = value
    _agree(env, tmp_path)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.dictionaries(
        st.sampled_from([*CHECKS, "nonsense"]), st.sampled_from(TOML_VALUES), max_size=3
    )
)
def test_config_file_values_are_vouched_for_only_where_the_model_accepts_them(
    tmp_path: Path, values: dict[str, str]
) -> None:
    home = tmp_path / "home"
    (home / "config").mkdir(parents=True, exist_ok=True)
    text = "".join(f"{field} = {value}\n" for field, value in values.items())
    (home / "config" / "config.toml").write_text(text)
    _agree({"AGENTFIRM_HOME": str(home)}, tmp_path)


@pytest.mark.parametrize(
    "env",
    [
        {"AGENTFIRM_MAX_CONCURRENCY": "99"},
        {"AGENTFIRM_LOG_LEVEL": "loud"},
        {"AGENTFIRM_TIERS__REASONING": '["offline:x"]'},
        {"AGENTFIRM_HOME": "/a", "agentfirm_home": "/b"},
        {"AGENTFIRM_DATABASE_URL": "mysql://h"},
    ],
)
def test_what_the_model_must_judge_is_left_to_it(tmp_path: Path, env: dict[str, str]) -> None:
    assert read_plainly({"AGENTFIRM_HOME": str(tmp_path), **env}, cwd=tmp_path) is None


def test_a_dotenv_file_is_left_to_the_model(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AGENTFIRM_OFFLINE=1\n")

    assert read_plainly({"AGENTFIRM_HOME": str(tmp_path)}, cwd=tmp_path) is None


def test_the_usual_settings_are_read_plainly(tmp_path: Path) -> None:
    env = {"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_OFFLINE": "1", "AGENTFIRM_NO_DAEMON": "1"}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.toml").write_text(
        'database_url = "sqlite:///x.db"\nbudget_usd = 2.5\nlog_level = "INFO"\n'
    )

    plain = read_plainly(env, cwd=tmp_path)

    assert plain is not None
    assert (plain.home, plain.database_url) == (tmp_path, "sqlite:///x.db")
    assert math.isclose(float(load_settings(env, cwd=tmp_path).budget_usd), 2.5)
