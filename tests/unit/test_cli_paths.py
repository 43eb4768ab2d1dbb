"""``paths_for``: where a command that only looks for the daemon finds agentfirm's files — the
same place the settings say, read from the environment alone when it decides."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfirm.cli.context import paths_for
from agentfirm.settings import load_settings


@pytest.fixture(autouse=True)
def _elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # no .env of the repository's


def test_agentfirm_home_in_the_environment_decides(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "user"), "AGENTFIRM_HOME": str(tmp_path / "af")}

    assert paths_for(env) == load_settings(env).paths
    assert paths_for(env).runtime_dir == tmp_path / "af" / "run"


def test_without_a_home_the_xdg_directories_decide(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "user"), "XDG_RUNTIME_DIR": str(tmp_path / "xdg-run")}

    assert paths_for(env) == load_settings(env).paths
    assert paths_for(env).runtime_dir == tmp_path / "xdg-run" / "agentfirm"


def test_a_home_set_in_config_toml_is_honoured(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "user"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    config = tmp_path / "config" / "agentfirm" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'home = "{tmp_path / "from-toml"}"\n')

    assert paths_for(env).runtime_dir == load_settings(env).paths.runtime_dir
    assert paths_for(env).runtime_dir == tmp_path / "from-toml" / "run"


def test_a_home_set_in_dot_env_is_honoured(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "user")}
    Path(".env").write_text(f"AGENTFIRM_HOME={tmp_path / 'from-dotenv'}\n")

    assert paths_for(env).runtime_dir == tmp_path / "from-dotenv" / "run"
