"""A local task repo's commit is never cut in half by a stop: cancelled midway, it ends first
(a ``git add`` killed midway left the index locked, and the outputs half committed), then the
cancellation is raised; while it runs it is named, so a second Ctrl-C can say what it waits
for."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from agentfirm.domain.calls import InFlight
from agentfirm.handoff.repos import LocalGitRepos


async def test_a_commit_cancelled_midway_ends_then_the_cancellation_is_raised(
    tmp_path: Path,
) -> None:
    in_flight = InFlight()
    heard: list[str] = []
    begun = asyncio.Event()

    def hear(what: str) -> None:
        heard.append(what)
        if "commit" in what:
            begun.set()

    in_flight.heard = hear
    repos = LocalGitRepos(tmp_path, in_flight)
    repo = await repos.create("t_1")
    await repos.write_files(repo, {"outputs/a.md": "# A\n"})

    committing = asyncio.ensure_future(repos.commit(repo, "outputs"))
    await begun.wait()
    await asyncio.sleep(0)  # git add is under way
    committing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await committing

    assert heard == [f"the outputs to be written to {repo}", f"the git commit in {repo}"]
    assert in_flight.finishing_now == []
    assert not (Path(repo) / ".git" / "index.lock").exists()
    log = await asyncio.to_thread(
        subprocess.run,
        ["git", "-C", repo, "log", "--format=%s"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert log.stdout.split("\n")[0] == "outputs"
