"""What the first Ctrl-C of an in-process run says: it counts the calls in flight and promises
their grace only when there are some (it used to promise it with none in flight, where the run
stops at once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfirm.cli.interrupt import winding_down
from agentfirm.settings import load_settings


def _said(tmp_path: Path, capsys: pytest.CaptureFixture[str], in_flight: int, grace: str) -> str:
    settings = load_settings(
        {"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_CANCEL_GRACE_S": grace}, cwd=tmp_path
    )
    winding_down(settings, in_flight)
    captured = capsys.readouterr()
    assert captured.out == ""
    return " ".join(captured.err.split())


def test_with_no_call_in_flight_it_says_it_stops_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = _said(tmp_path, capsys, 0, "40")
    assert said == "agentfirm: stopping now: no call is in flight"


@pytest.mark.parametrize(
    ("in_flight", "grace", "says"),
    [
        (
            1,
            "40",
            "stopping: 1 call already sent gets up to 40s to answer and is booked at what "
            "it costs; Ctrl-C again stops now, booking it at its reservation (marked ≤",
        ),
        (
            3,
            "40",
            "stopping: 3 calls already sent get up to 40s to answer and are booked at "
            "what they cost; Ctrl-C again stops now, booking them at their reservations",
        ),
        (2, "0", "stopping: 2 calls already sent are booked at their reservations (marked ≤)"),
    ],
)
def test_calls_in_flight_are_counted_and_given_their_grace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], in_flight: int, grace: str, says: str
) -> None:
    assert says in _said(tmp_path, capsys, in_flight, grace)
