from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from agentfirm.errors import ConfigError
from agentfirm.paths import Paths
from agentfirm.settings import Settings, load_settings, masked_dump


@pytest.fixture
def home(tmp_path: Path) -> Path:
    root = tmp_path / "home"
    (root / "config").mkdir(parents=True)
    return root


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def write_toml(home: Path, text: str) -> Path:
    path = home / "config" / "config.toml"
    path.write_text(text)
    return path


def load(home: Path, cwd: Path, **env: str) -> Settings:
    return load_settings({"AGENTFIRM_HOME": str(home), **env}, cwd=cwd)


def problems_of(home: Path, cwd: Path, **env: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(home, cwd, **env)
    return caught.value.problems


def test_defaults_apply_when_nothing_is_configured(home: Path, cwd: Path) -> None:
    settings = load(home, cwd)
    assert settings.budget_usd == Decimal("5.00")
    assert settings.max_concurrency == 4


def test_toml_overrides_defaults(home: Path, cwd: Path) -> None:
    write_toml(home, "budget_usd = 2.5\n")
    assert load(home, cwd).budget_usd == Decimal("2.5")


def test_dotenv_overrides_toml(home: Path, cwd: Path) -> None:
    write_toml(home, "budget_usd = 2.5\n")
    (cwd / ".env").write_text("AGENTFIRM_BUDGET_USD=3.5\n")
    assert load(home, cwd).budget_usd == Decimal("3.5")


def test_env_overrides_dotenv(home: Path, cwd: Path) -> None:
    write_toml(home, "budget_usd = 2.5\n")
    (cwd / ".env").write_text("AGENTFIRM_BUDGET_USD=3.5\n")
    assert load(home, cwd, AGENTFIRM_BUDGET_USD="4.5").budget_usd == Decimal("4.5")


def test_nested_env_overrides_one_tier_and_keeps_the_others_from_toml(
    home: Path, cwd: Path
) -> None:
    write_toml(home, '[tiers]\nreasoning = ["openai:gpt-5"]\nutility = ["offline:x"]\n')
    settings = load(home, cwd, AGENTFIRM_TIERS__REASONING='["anthropic:claude-opus-4-5"]')
    assert settings.tiers.reasoning == ["anthropic:claude-opus-4-5"]
    assert settings.tiers.utility == ["offline:x"]


def test_toml_price_tables_are_read(home: Path, cwd: Path) -> None:
    write_toml(home, '[prices."my-model"]\ninput_per_mtok = 3\noutput_per_mtok = 15\n')
    assert load(home, cwd).prices["my-model"].output_per_mtok == Decimal(15)


def test_only_the_given_env_is_read(home: Path, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFIRM_BUDGET_USD", "9.99")
    assert load(home, cwd).budget_usd == Decimal("5.00")


def test_agentfirm_home_relocates_every_dir(home: Path, cwd: Path) -> None:
    paths = load(home, cwd, XDG_CONFIG_HOME="/elsewhere", XDG_RUNTIME_DIR="/run/u").paths
    assert paths == Paths(home / "config", home / "data", home / "state", home / "run")


def test_agentfirm_home_relocates_the_toml_read(home: Path, cwd: Path) -> None:
    write_toml(home, "max_concurrency = 9\n")
    assert load(home, cwd).max_concurrency == 9


def test_xdg_dirs_are_used_without_home(tmp_path: Path, cwd: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "c"), "XDG_DATA_HOME": str(tmp_path / "d")}
    env |= {"XDG_STATE_HOME": str(tmp_path / "s"), "HOME": str(tmp_path)}
    paths = load_settings(env, cwd=cwd).paths
    assert (paths.config_dir, paths.data_dir, paths.state_dir, paths.runtime_dir) == (
        tmp_path / "c" / "agentfirm",
        tmp_path / "d" / "agentfirm",
        tmp_path / "s" / "agentfirm",
        tmp_path / "s" / "agentfirm" / "run",
    )


def test_xdg_defaults_sit_under_the_user_home(tmp_path: Path, cwd: Path) -> None:
    paths = load_settings({"HOME": str(tmp_path)}, cwd=cwd).paths
    assert paths.config_file == tmp_path / ".config" / "agentfirm" / "config.toml"
    assert paths.db_path == tmp_path / ".local" / "share" / "agentfirm" / "agentfirm.db"
    assert paths.log_path == tmp_path / ".local" / "state" / "agentfirm" / "agentfirm.log"


def test_ensure_creates_a_private_runtime_dir(home: Path) -> None:
    paths = Paths.resolve(home, {})
    paths.ensure()
    assert paths.data_dir.is_dir()
    assert paths.runtime_dir.stat().st_mode & 0o777 == 0o700


def test_two_bad_values_are_reported_in_one_error(home: Path, cwd: Path) -> None:
    problems = problems_of(
        home, cwd, AGENTFIRM_BUDGET_USD="abc", AGENTFIRM_TIERS__REASONING='["nope:model"]'
    )
    assert len(problems) == 2
    assert problems[0] == (
        "budget_usd (env AGENTFIRM_BUDGET_USD): 'abc' is not a number — "
        "set a USD amount such as 5.00"
    )
    assert problems[1].startswith(
        "tiers.reasoning[0] (env AGENTFIRM_TIERS__REASONING): 'nope:model' names unknown "
        "provider 'nope'"
    )


def test_unknown_provider_problem_names_the_known_ones(home: Path, cwd: Path) -> None:
    [problem] = problems_of(home, cwd, AGENTFIRM_TIERS__UTILITY='["nope:model"]')
    assert "anthropic, openai, gemini, openai_compat, offline" in problem


def test_a_problem_names_the_toml_file_it_came_from(home: Path, cwd: Path) -> None:
    path = write_toml(home, "max_concurrency = 100\n")
    [problem] = problems_of(home, cwd)
    assert problem.startswith(f"max_concurrency ({path}): 100 is outside 1..64")


def test_a_problem_names_the_dotenv_it_came_from(home: Path, cwd: Path) -> None:
    (cwd / ".env").write_text("AGENTFIRM_RUNNER=cloud\n")
    [problem] = problems_of(home, cwd)
    assert problem.startswith("runner (.env AGENTFIRM_RUNNER): 'cloud' is not one of")


def test_toml_syntax_error_names_file_and_line(home: Path, cwd: Path) -> None:
    path = write_toml(home, "budget_usd = 2.5\n\nrunner = = 'x'\n")
    [problem] = problems_of(home, cwd)
    assert f"{path}:3" in problem


def test_toml_syntax_error_and_env_error_are_reported_together(home: Path, cwd: Path) -> None:
    write_toml(home, "runner = \n")
    assert len(problems_of(home, cwd, AGENTFIRM_MAX_CONCURRENCY="0")) == 2


def test_unknown_toml_key_is_a_problem(home: Path, cwd: Path) -> None:
    write_toml(home, "budget = 3\n")
    [problem] = problems_of(home, cwd)
    assert problem.startswith("budget (")


def test_non_json_tier_list_is_reported_against_its_setting(home: Path, cwd: Path) -> None:
    [problem] = problems_of(home, cwd, AGENTFIRM_TIERS__EXECUTION="anthropic:x")
    assert problem.startswith("tiers.execution (env AGENTFIRM_TIERS__EXECUTION): 'anthropic:x'")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AGENTFIRM_BUDGET_USD", "0"),
        ("AGENTFIRM_MAX_CONCURRENCY", "65"),
        ("AGENTFIRM_OFFLINE_LATENCY_MS", "500-100"),
        ("AGENTFIRM_OFFLINE_LATENCY_MS", "fast"),
        ("AGENTFIRM_DATABASE_URL", "mysql://db/x"),
        ("AGENTFIRM_REDIS_URL", "http://localhost:6379"),
        ("AGENTFIRM_LOG_LEVEL", "loud"),
    ],
)
def test_semantic_check_rejects(home: Path, cwd: Path, name: str, value: str) -> None:
    [problem] = problems_of(home, cwd, **{name: value})
    assert f"(env {name})" in problem


def test_a_bad_url_problem_never_shows_its_password(home: Path, cwd: Path) -> None:
    [problem] = problems_of(home, cwd, AGENTFIRM_DATABASE_URL="mysql://u:hunter2pass@db/x")
    assert "hunter2pass" not in problem


def test_latency_range_reads_single_value_and_range(home: Path, cwd: Path) -> None:
    assert load(home, cwd, AGENTFIRM_OFFLINE_LATENCY_MS="200-800").latency_range() == (200, 800)
    assert load(home, cwd, AGENTFIRM_OFFLINE_LATENCY_MS="50").latency_range() == (50, 50)


def test_masked_dump_hides_url_passwords(home: Path, cwd: Path) -> None:
    settings = load(
        home,
        cwd,
        AGENTFIRM_DATABASE_URL="postgresql://app:pgsecret99@db.example/app",
        AGENTFIRM_REDIS_URL="rediss://:redissecret9@cache:6380/0",
    )
    dumped = json.dumps(masked_dump(settings))
    assert "pgsecret99" not in dumped
    assert "redissecret9" not in dumped
    assert "postgresql://app:****@db.example/app" in dumped


def test_masked_dump_hides_values_under_secret_looking_keys(home: Path, cwd: Path) -> None:
    write_toml(home, '[prices."api-key-model"]\ninput_per_mtok = 3\noutput_per_mtok = 15\n')
    dumped = masked_dump(load(home, cwd))
    assert dumped["prices"] == {"api-key-model": "****"}


def test_masked_dump_is_json_with_the_resolved_paths(home: Path, cwd: Path) -> None:
    dumped = json.loads(json.dumps(masked_dump(load(home, cwd))))
    assert dumped["budget_usd"] == "5.00"
    assert dumped["paths"]["config_file"] == str(home / "config" / "config.toml")
