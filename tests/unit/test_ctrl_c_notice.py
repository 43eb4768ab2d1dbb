"""What the first Ctrl-C of an in-process run says: it counts the calls in flight and promises
their grace only when there are some (it used to promise it with none in flight, where the run
stops at once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfirm.cli.interrupt import still_waiting, winding_down
from agentfirm.settings import load_settings


def _said(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    in_flight: int,
    grace: str,
    tools: int = 0,
) -> str:
    settings = load_settings(
        {"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_CANCEL_GRACE_S": grace}, cwd=tmp_path
    )
    winding_down(settings, in_flight, tools)
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


@pytest.mark.parametrize(
    ("in_flight", "tools", "grace", "says"),
    [
        (
            0,
            1,
            "40",
            "agentfirm: stopping: 1 tool call running gets up to 40s to answer; Ctrl-C again "
            "cuts it off (the transcript says so; resume does not run it again)",
        ),
        (
            0,
            2,
            "0",
            "agentfirm: stopping: 2 tool calls running are cut off (the transcript says so; "
            "resume does not run them again)",
        ),
    ],
)
def test_tool_calls_running_are_counted_and_what_a_cut_does_to_them_is_said(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    in_flight: int,
    tools: int,
    grace: str,
    says: str,
) -> None:
    """A run stopped inside a tool call said "no call is in flight" and then waited for it."""
    assert _said(tmp_path, capsys, in_flight, grace, tools) == says


def test_requests_and_tool_calls_are_said_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = _said(tmp_path, capsys, 1, "40", tools=1)
    assert said.startswith("agentfirm: stopping: 1 call already sent gets up to 40s")
    assert said.endswith(
        "; 1 tool call running gets up to 40s to answer; Ctrl-C again cuts it "
        "off (the transcript says so; resume does not run it again)"
    )


def test_a_second_ctrl_c_names_what_it_still_waits_for(capsys: pytest.CaptureFixture[str]) -> None:
    still_waiting("mcp:notes to stop")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "agentfirm: waiting for mcp:notes to stop; Ctrl-C again stops at once\n"
