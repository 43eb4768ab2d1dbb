"""GitHub task repos: real PyGithub against the loopback GitHub (issue 7, acceptance 2 and 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfirm import __version__
from agentfirm.domain.models import TaskSpec
from agentfirm.errors import AgentfirmError, BadInput
from agentfirm.handoff.github import GitHubRepos, colab_url, repos_for
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.handoff.task_repo import publish_task_repo
from agentfirm.personas.library import PersonaLibrary
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from tests.fakes.github import FakeGitHub

pytestmark = pytest.mark.integration

TOKEN = "canary-github-token-7d41e0"
TASK = "t_abc123"
HAND_OFF_FILES = {
    "README.md",
    "spec.json",
    "persona.yaml",
    "notebook.ipynb",
    "requirements.txt",
    "outputs/README.md",
    f"wheels/agentfirm-{__version__}-py3-none-any.whl",
}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub({TOKEN: "alice"}, orgs={"acme": {"alice"}}) as fake:
        yield fake


def _repos(
    github: FakeGitHub, *, token: str | None = TOKEN, owner: str | None = None
) -> GitHubRepos:
    return GitHubRepos(token=lambda: token, owner=owner, api_url=github.url)


@pytest.fixture
def spec() -> TaskSpec:
    persona = PersonaLibrary.load().get("patent_research")
    return TaskSpec(
        task_id=TASK,
        request="Prior art search for a self-healing solder alloy",
        persona=persona.id,
        persona_name=persona.name,
        plan=persona.to_plan(),
        quality_checklist=list(persona.quality_checklist),
        budget_nano=2_000_000_000,
    )


def _posts(github: FakeGitHub, suffix: str) -> list[str]:
    return [r.path for r in github.requests if r.method == "POST" and r.path.endswith(suffix)]


async def test_create_makes_a_private_repo_named_after_the_task_under_the_user(
    github: FakeGitHub,
) -> None:
    location = await _repos(github).create(TASK)

    assert location == f"{github.url}/alice/agentfirm-{TASK}"
    repo = github.repos[f"alice/agentfirm-{TASK}"]
    assert repo.private is True
    assert _posts(github, "/repos") == ["/user/repos"]


async def test_create_under_an_organization_posts_to_the_organization(
    github: FakeGitHub,
) -> None:
    location = await _repos(github, owner="acme").create(TASK)

    assert location.endswith(f"/acme/agentfirm-{TASK}")
    assert _posts(github, "/repos") == ["/orgs/acme/repos"]


async def test_hand_off_is_one_commit_holding_every_file(
    github: FakeGitHub, spec: TaskSpec
) -> None:
    published = await publish_task_repo(
        _repos(github), spec, persona=PersonaLibrary.load().get("patent_research")
    )

    full_name = f"alice/agentfirm-{TASK}"
    history = github.history(full_name)
    assert len(history) == 1
    assert history[0]["sha"] == published.commit
    assert set(github.files(full_name)) == HAND_OFF_FILES
    assert len(_posts(github, "/git/commits")) == 1


async def test_hand_off_files_are_committed_byte_for_byte(github: FakeGitHub) -> None:
    repos = _repos(github)
    location = await repos.create(TASK)
    files = {"spec.json": '{"a": "é"}\n', "outputs/chart.png": b"\x89PNG\r\n\x00\xff"}
    await repos.write_files(location, files)

    await repos.commit(location, "agentfirm: files")

    stored = github.files(f"alice/agentfirm-{TASK}")
    assert stored == {
        "spec.json": '{"a": "é"}\n'.encode(),
        "outputs/chart.png": files["outputs/chart.png"],
    }


async def test_the_launch_url_has_the_documented_colab_form(
    github: FakeGitHub, spec: TaskSpec
) -> None:
    published = await publish_task_repo(_repos(github), spec)

    assert published.launch_url == (
        f"https://colab.research.google.com/github/alice/agentfirm-{TASK}/blob/main/notebook.ipynb"
    )


def test_colab_url_keeps_github_names_and_paths_as_they_are() -> None:
    assert (
        colab_url("my-org", "agentfirm-t_1.x", "main", "notebooks/run.ipynb")
        == "https://colab.research.google.com/github/my-org/agentfirm-t_1.x/blob/main/notebooks/run.ipynb"
    )


async def test_a_later_commit_builds_on_the_hand_off(github: FakeGitHub, spec: TaskSpec) -> None:
    repos = _repos(github)
    published = await publish_task_repo(repos, spec)
    await repos.write_files(published.location, {"deliverable.md": "# Report\n"})

    sha = await repos.commit(published.location, "agentfirm: deliverable")

    history = github.history(f"alice/agentfirm-{TASK}")
    assert [c["sha"] for c in history] == [sha, published.commit]
    assert "deliverable.md" in github.files(f"alice/agentfirm-{TASK}")


async def test_a_taken_name_is_one_clear_line_and_nothing_is_written(
    github: FakeGitHub, spec: TaskSpec
) -> None:
    github.add_repo("alice", f"agentfirm-{TASK}", description="someone else's project")

    with pytest.raises(BadInput) as caught:
        await publish_task_repo(_repos(github), spec)

    message = str(caught.value)
    assert f"alice/agentfirm-{TASK} already exists" in message
    assert "\n" not in message
    assert [c["message"] for c in github.history(f"alice/agentfirm-{TASK}")] == ["Initial commit"]
    assert _posts(github, "/git/blobs") == []


async def test_a_bad_token_is_one_clear_line_naming_github_token(
    github: FakeGitHub, spec: TaskSpec
) -> None:
    with pytest.raises(BadInput) as caught:
        await publish_task_repo(_repos(github, token="not-a-valid-token"), spec)

    message = str(caught.value)
    assert "GITHUB_TOKEN" in message
    assert "401" in message
    assert "\n" not in message
    assert "not-a-valid-token" not in message
    assert github.repos == {}


async def test_a_missing_token_says_how_to_set_it(github: FakeGitHub) -> None:
    with pytest.raises(BadInput, match="GITHUB_TOKEN is not set"):
        await _repos(github, token=None).create(TASK)
    assert github.requests == []


async def test_an_unknown_owner_is_refused_before_anything_is_created(
    github: FakeGitHub,
) -> None:
    with pytest.raises(BadInput, match="'nobody' is neither"):
        await _repos(github, owner="nobody").create(TASK)
    assert github.repos == {}


async def test_create_again_reopens_the_tasks_own_repo(github: FakeGitHub, spec: TaskSpec) -> None:
    published = await publish_task_repo(_repos(github), spec)

    assert await _repos(github).create(TASK) == published.location
    assert len(github.repos) == 1


async def test_read_file_returns_the_committed_bytes_or_none(
    github: FakeGitHub, spec: TaskSpec
) -> None:
    repos = _repos(github)
    published = await publish_task_repo(repos, spec)

    assert (
        await repos.read_file(published.location, "spec.json")
        == spec.model_dump_json(indent=2).encode() + b"\n"
    )
    assert await repos.read_file(published.location, "missing.txt") is None


async def test_a_failed_commit_keeps_the_files_staged_for_a_retry(github: FakeGitHub) -> None:
    repos = _repos(github)
    location = await repos.create(TASK)
    await repos.write_files(location, {"spec.json": "{}\n"})
    github.fail("POST", r"/repos/.+/git/trees", 422, "Invalid tree info")

    with pytest.raises(AgentfirmError, match="422"):
        await repos.commit(location, "agentfirm: first try")
    await repos.commit(location, "agentfirm: second try")

    assert set(github.files(f"alice/agentfirm-{TASK}")) == {"spec.json"}


async def test_the_token_is_sent_only_as_a_header_never_stored(
    github: FakeGitHub, spec: TaskSpec
) -> None:
    repos = _repos(github)
    published = await publish_task_repo(repos, spec)
    await repos.write_files(published.location, {"deliverable.md": "# Report\n"})
    await repos.commit(published.location, "agentfirm: deliverable")

    stored = b"".join(github.files(f"alice/agentfirm-{TASK}").values())
    bodies = repr([(r.path, r.query, r.body) for r in github.requests])
    assert TOKEN.encode() not in stored
    assert TOKEN not in bodies
    assert all(r.headers["authorization"] == f"token {TOKEN}" for r in github.requests)


def test_repos_for_selects_github_when_configured(tmp_path: Path) -> None:
    env = {
        "AGENTFIRM_HOME": str(tmp_path),
        "AGENTFIRM_REPO_BACKEND": "github",
        "AGENTFIRM_GITHUB_OWNER": "acme",
        "AGENTFIRM_GITHUB_API_URL": "https://ghe.example/api/v3/",
    }
    backend = repos_for(load_settings(env), SecretStore(Redactor(), env=env))

    assert isinstance(backend, GitHubRepos)
    assert (backend.owner, backend.api_url) == ("acme", "https://ghe.example/api/v3")


def test_repos_for_defaults_to_local_git_under_the_data_dir(tmp_path: Path) -> None:
    env = {"AGENTFIRM_HOME": str(tmp_path)}
    backend = repos_for(load_settings(env), SecretStore(Redactor(), env=env))

    assert isinstance(backend, LocalGitRepos)
    assert backend.root == tmp_path / "data" / "repos"
