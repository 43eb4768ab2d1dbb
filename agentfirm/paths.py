"""Where agentfirm keeps its files: XDG base directories, or one root under ``AGENTFIRM_HOME``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP_DIR = "agentfirm"


def _user_home(env: Mapping[str, str]) -> Path:
    # The env given wins over the process's HOME so tests can pass a fake one.
    home = env.get("HOME")
    return Path(home) if home else Path.home()


def _xdg(env: Mapping[str, str], name: str, default: Path) -> Path:
    # The XDG spec says relative values are invalid and must be ignored.
    value = env.get(name)
    if value and Path(value).is_absolute():
        return Path(value) / APP_DIR
    return default / APP_DIR


@dataclass(frozen=True)
class Paths:
    """The four directories agentfirm uses and the well-known files inside them."""

    config_dir: Path
    data_dir: Path
    state_dir: Path
    runtime_dir: Path

    @classmethod
    def resolve(cls, home: Path | None, env: Mapping[str, str]) -> Paths:
        """``home`` (``AGENTFIRM_HOME``) puts everything under one root: ``home/config``,
        ``home/data``, ``home/state``, ``home/run``. Otherwise the XDG base directories from
        ``env`` apply, with their documented defaults under ``$HOME``."""
        if home is not None:
            root = home.expanduser()
            return cls(root / "config", root / "data", root / "state", root / "run")
        user = _user_home(env)
        state_dir = _xdg(env, "XDG_STATE_HOME", user / ".local" / "state")
        runtime = env.get("XDG_RUNTIME_DIR")
        runtime_dir = (
            Path(runtime) / APP_DIR
            if runtime and Path(runtime).is_absolute()
            else state_dir / "run"
        )
        return cls(
            config_dir=_xdg(env, "XDG_CONFIG_HOME", user / ".config"),
            data_dir=_xdg(env, "XDG_DATA_HOME", user / ".local" / "share"),
            state_dir=state_dir,
            runtime_dir=runtime_dir,
        )

    def ensure(self) -> None:
        """Create every directory (idempotent). The runtime dir holds the daemon socket, so it is
        private to the user (0700) whatever the umask."""
        for directory in (self.config_dir, self.data_dir, self.state_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.runtime_dir.chmod(0o700)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "agentfirm.db"

    @property
    def bus_path(self) -> Path:
        return self.data_dir / "bus.db"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "agentfirm.log"

    @property
    def daemon_socket(self) -> Path:
        # Here rather than in the daemon package so front ends (the TUI) can find it without
        # importing the daemon.
        return self.runtime_dir / "agentfirm.sock"

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def dotenv_file(self) -> Path:
        """The ``.env`` read by ``load_settings``: the one in the current working directory."""
        return Path.cwd() / ".env"
