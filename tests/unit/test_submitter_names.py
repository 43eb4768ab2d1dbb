"""A submitter's name is made to fit what the daemon takes (``front:[A-Za-z0-9_.@-]{1,64}``), so
an unusual login name never refuses a submission."""

from __future__ import annotations

import getpass
import re

import pytest

from agentfirm.api.models import SUBMITTER
from agentfirm.api.models import fit_submitter as _submitter
from agentfirm.cli.context import submitter


@pytest.mark.parametrize("login", ["alice", "bob smith", "jörg", "x" * 80, "a/b:c"])
def test_the_clis_submitter_fits_the_daemons_pattern(
    monkeypatch: pytest.MonkeyPatch, login: str
) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: login)

    name = submitter()

    assert re.fullmatch(SUBMITTER, name), name
    assert name == "cli:alice" if login == "alice" else name.startswith("cli:")


@pytest.mark.parametrize("actor", ["tui:ann", "tui:ann lee", "tui:", "tui:" + "é" * 70])
def test_the_tuis_submitter_fits_the_daemons_pattern(actor: str) -> None:
    name = _submitter(actor)

    assert re.fullmatch(SUBMITTER, name), name
    assert name == "tui:ann" if actor == "tui:ann" else name.startswith("tui:")
