"""Where agentfirm keeps its files: XDG base directories, or one root under ``AGENTFIRM_HOME``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

APP_DIR = "agentfirm"
PRIVATE_UMASK = 0o077
"""Files this process creates are 0600, folders 0700: requests, deliverables, ledgers and
logs are the user's alone, whatever umask the shell had."""


HOME_VAR = "AGENTFIRM_HOME"


def home_from(env: Mapping[str, str | None]) -> Path | None:
    """``AGENTFIRM_HOME`` from ``env`` (any case, as settings read it), or None."""
    wanted = HOME_VAR.lower()
    for name, value in env.items():
        if name.lower() == wanted and value:
            return Path(value)
    return None


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


def _unusable(directory: Path, err: OSError) -> Exception:
    """Why agentfirm cannot keep its files in ``directory``: bad input (exit 2) naming the
    directory and the settings that place it, or ``DiskFull`` when the disk is."""
    from agentfirm.errors import BadInput, disk_full

    full = disk_full(err, directory)
    if full is not None:
        return full
    if isinstance(err, FileExistsError | NotADirectoryError):
        why = "a file is in the way" if directory.exists() else "a part of its path is a file"
    else:
        why = err.strerror or str(err)
    return BadInput(
        f"cannot use {directory} for agentfirm's files: {why}",
        hint=f"point {HOME_VAR} (or the XDG_*_HOME variables) at a directory you can write",
    )


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
        """Create every directory (idempotent), private to the user (0700) whatever the umask,
        and set this process's umask to ``PRIVATE_UMASK``: everything made under them from here
        on — SQLite files, logs, git repos, sockets, outboxes, and whatever child processes
        (git, a notebook's kernel, the daemon) make — is private too. Directories an older
        version made group- or world-readable are made private again."""
        os.umask(PRIVATE_UMASK)
        for directory in (self.config_dir, self.data_dir, self.state_dir, self.runtime_dir):
            try:
                directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                if directory.stat().st_mode & 0o077:
                    directory.chmod(0o700)
                if not os.access(directory, os.W_OK | os.X_OK):
                    raise PermissionError(13, "Permission denied", str(directory))
            except OSError as err:
                raise _unusable(directory, err) from err

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
