"""A home agentfirm cannot keep its files in is bad input naming the directory and the variable
that places it (issue 20: it was ``internal error``, exit 1, even for ``config check``)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from agentfirm.errors import BadInput, DiskFull
from agentfirm.paths import Paths


@pytest.fixture(autouse=True)
def _keep_umask() -> object:
    mask = os.umask(0o022)
    os.umask(mask)
    yield None
    os.umask(mask)


def test_a_home_under_a_file_names_the_directory_and_agentfirm_home(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(BadInput) as caught:
        Paths.resolve(blocker / "home", {}).ensure()

    assert str(blocker / "home" / "config") in str(caught.value)
    assert "a part of its path is a file" in str(caught.value)
    assert "AGENTFIRM_HOME" in str(caught.value)


def test_a_home_this_user_cannot_write_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # chmod does not stop root (CI runs as root): the refusal is what os.access says.
    monkeypatch.setattr(os, "access", lambda path, mode: False)

    with pytest.raises(BadInput) as caught:
        Paths.resolve(tmp_path / "home", {}).ensure()

    assert "Permission denied" in str(caught.value)


def test_a_full_disk_stays_disk_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(self: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "mkdir", full)

    with pytest.raises(DiskFull):
        Paths.resolve(tmp_path / "home", {}).ensure()
