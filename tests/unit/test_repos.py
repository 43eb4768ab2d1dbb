"""Local git task repos: created without any git config, files committed in one commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agentfirm.errors import AgentfirmError, BadInput
from agentfirm.handoff import repos
from agentfirm.handoff.repos import LocalGitRepos


def git(repo: str, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", repo, *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalGitRepos:
    # No global or system git config: the backend must bring its own identity.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.delenv("GIT_AUTHOR_NAME", raising=False)
    monkeypatch.delenv("GIT_COMMITTER_EMAIL", raising=False)
    return LocalGitRepos(tmp_path / "repos")


async def test_create_makes_a_git_repo_on_main_under_the_root(
    backend: LocalGitRepos, tmp_path: Path
) -> None:
    repo = await backend.create("t_abc123")
    assert Path(repo) == tmp_path / "repos" / "t_abc123"
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main"


async def test_create_twice_reuses_the_repo(backend: LocalGitRepos) -> None:
    first = await backend.create("t_abc123")
    await backend.write_files(first, {"spec.json": "{}\n"})
    await backend.commit(first, "spec")
    assert await backend.create("t_abc123") == first
    assert git(first, "rev-list", "--count", "HEAD").strip() == "1"


async def test_commit_holds_every_file_written_in_one_commit(backend: LocalGitRepos) -> None:
    repo = await backend.create("t_abc123")
    await backend.write_files(repo, {"spec.json": "{}\n"})
    await backend.write_files(
        repo, {"deliverable.md": "# Report\n", "data/chart.png": b"\x89PNG\r\n"}
    )
    sha = await backend.commit(repo, "agentfirm: deliverable")
    stat = git(repo, "show", "--stat", "--format=%H %an <%ae> %s", sha)
    assert stat.splitlines()[0] == f"{sha} agentfirm <agentfirm@localhost> agentfirm: deliverable"
    for name in ("spec.json", "deliverable.md", "data/chart.png"):
        assert name in stat
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "1"


async def test_bytes_are_written_unchanged(backend: LocalGitRepos) -> None:
    repo = await backend.create("t_abc123")
    await backend.write_files(repo, {"blob.bin": bytes(range(256))})
    assert (Path(repo) / "blob.bin").read_bytes() == bytes(range(256))


@pytest.mark.parametrize(
    "path", ["/etc/passwd", "../outside.md", "docs/../../outside.md", ".git/config", "", "./"]
)
async def test_paths_outside_the_repo_are_refused(backend: LocalGitRepos, path: str) -> None:
    repo = await backend.create("t_abc123")
    with pytest.raises(BadInput, match="repo file path"):
        await backend.write_files(repo, {path: "x"})


async def test_a_symlink_out_of_the_repo_is_refused(backend: LocalGitRepos, tmp_path: Path) -> None:
    repo = await backend.create("t_abc123")
    (tmp_path / "elsewhere").mkdir()
    (Path(repo) / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(BadInput, match="leaves the repo"):
        await backend.write_files(repo, {"link/file.md": "x"})
    assert not (tmp_path / "elsewhere" / "file.md").exists()


async def test_a_task_id_that_is_not_a_directory_name_is_refused(
    backend: LocalGitRepos,
) -> None:
    with pytest.raises(BadInput, match="cannot name a repo directory"):
        await backend.create("../escape")


async def test_missing_git_says_to_install_it(
    backend: LocalGitRepos, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(repos, "_GIT", "agentfirm-no-such-git")
    with pytest.raises(AgentfirmError, match="git is not installed") as caught:
        await backend.create("t_abc123")
    assert caught.value.hint is not None
    assert "install git" in caught.value.hint
