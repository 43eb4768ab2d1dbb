"""Task repos on GitHub (github.com or Enterprise) through PyGithub.

One private repo per task, ``agentfirm-{task_id}``, under the token's user or an organization.
Files written are staged in memory and committed together through the Git Data API (blobs → tree
→ commit → ref), so a hand-off is ONE commit however many files it holds. PyGithub is
synchronous: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import structlog

from agentfirm.errors import AgentfirmError, BadInput
from agentfirm.handoff.repos import LocalGitRepos, RepoBackend, checked_relpath

if TYPE_CHECKING:
    from github import Github
    from github.Repository import Repository

    from agentfirm.domain.calls import InFlight
    from agentfirm.secrets import SecretStore
    from agentfirm.settings import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")
TOKEN_NAME = "GITHUB_TOKEN"
DEFAULT_API_URL = "https://api.github.com"
COLAB_URL = "https://colab.research.google.com/github/{owner}/{repo}/blob/{branch}/{path}"
_TOKEN_HINT = (
    f"set a valid token with `agentfirm secrets set {TOKEN_NAME}`; it needs the repo scope"
)


def repo_name(task_id: str) -> str:
    """The GitHub repo name of a task: ``agentfirm-{task_id}``."""
    return f"agentfirm-{task_id}"


def colab_url(owner: str, repo: str, branch: str, path: str) -> str:
    """The documented Colab launch URL of a notebook in a GitHub repo."""
    return COLAB_URL.format(
        owner=quote(owner), repo=quote(repo), branch=quote(branch), path=quote(path)
    )


def _marker(task_id: str) -> str:
    # The description marks a repo as this task's, so a re-run of the hand-off reopens it while
    # anyone else's repo of the same name is refused.
    return f"agentfirm task {task_id}"


@dataclass(frozen=True)
class _Target:
    owner: str
    name: str

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _target(location: str) -> _Target:
    """``owner/name`` of a repo from its ``html_url`` (github.com and Enterprise alike)."""
    parts = [p for p in urlsplit(location).path.split("/") if p]
    if len(parts) < 2:
        raise BadInput(
            f"{location!r} is not a GitHub repo URL",
            hint="use the repo's web URL, such as https://github.com/OWNER/NAME",
        )
    return _Target(parts[-2], parts[-1])


class GitHubRepos:
    """``RepoBackend`` on GitHub. ``token`` is read on every operation (a rotated token takes
    effect at once); ``owner`` is a user or an organization (``None``: the token's user);
    ``api_url`` is the REST root (``https://HOST/api/v3`` for Enterprise)."""

    def __init__(
        self,
        *,
        token: Callable[[], str | None],
        owner: str | None = None,
        api_url: str | None = None,
        private: bool = True,
        timeout_s: int = 30,
        retries: int = 3,
    ) -> None:
        self._token = token
        self.owner = owner
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.private = private
        self._timeout_s = timeout_s
        self._retries = retries
        self._lock = threading.Lock()
        self._staged: dict[str, dict[str, bytes]] = {}
        self._branches: dict[str, str] = {}
        # Repos this instance created: their only commit is GitHub's README, which the first
        # commit replaces, so the history holds exactly the commits agentfirm made.
        self._fresh: set[str] = set()

    # ------------------------------------------------------------------ RepoBackend
    async def create(self, task_id: str) -> str:
        """Create the private repo ``agentfirm-{task_id}`` (or reopen the one an earlier hand-off
        of this task made); returns its web URL. Raises ``BadInput`` for a missing or rejected
        token, an unknown owner, or a name someone else's repo already has — before anything
        is created."""
        return await self._call(lambda: self._create(task_id))

    async def write_files(self, repo: str, files: Mapping[str, str | bytes]) -> None:
        """Stage files for the next ``commit`` (nothing is sent yet)."""
        staged = {
            str(checked_relpath(name)): data.encode() if isinstance(data, str) else data
            for name, data in files.items()
        }
        with self._lock:
            self._staged.setdefault(repo, {}).update(staged)

    async def commit(self, repo: str, message: str) -> str:
        """Push every staged file in ONE commit on the default branch; returns its sha. On
        failure the files stay staged, so a retry sends them again."""
        with self._lock:
            files = dict(self._staged.get(repo, {}))
        sha = await self._call(lambda: self._commit(repo, files, message))
        with self._lock:
            remaining = self._staged.get(repo, {})
            for name, data in files.items():
                if remaining.get(name) is data:
                    del remaining[name]
        log.info("repo.committed", repo=repo, commit=sha, files=len(files))
        return sha

    # ------------------------------------------------------------------ beyond the protocol
    async def launch_url(self, repo: str, path: str) -> str:
        """The Colab URL that opens ``path`` (a notebook) of ``repo`` on its default branch."""
        target = _target(repo)
        branch = self._branches.get(repo)
        if branch is None:
            branch = await self._call(lambda: self._default_branch(target))
        return colab_url(target.owner, target.name, branch, path)

    async def read_file(self, repo: str, path: str) -> bytes | None:
        """The content of ``path`` on the default branch, or ``None`` when it does not exist."""
        name = str(checked_relpath(path))
        return await self._call(lambda: self._read(repo, name))

    # ------------------------------------------------------------------ sync work (threads)
    def _client(self) -> Github:
        from github import Auth, Github, GithubRetry

        token = self._token()
        if not token:
            raise BadInput(
                f"{TOKEN_NAME} is not set (GitHub task repos need it)",
                hint=f"`agentfirm secrets set {TOKEN_NAME}`, or set AGENTFIRM_REPO_BACKEND=local",
            )
        return Github(
            auth=Auth.Token(token),
            base_url=self.api_url,
            timeout=self._timeout_s,
            retry=GithubRetry(total=self._retries),
            # A hand-off is a dozen writes, not the bulk GitHub's 1 s spacing is for; rate
            # limit answers are retried by GithubRetry.
            seconds_between_requests=None,
            seconds_between_writes=None,
            lazy=True,
        )

    @staticmethod
    def _repo(client: Github, target: _Target) -> Repository:
        return client.get_repo(target.full_name)  # lazy: fetched on first attribute read

    def _create(self, task_id: str) -> str:
        from github import GithubException, UnknownObjectException

        client = self._client()
        try:
            login = client.get_user().login  # checks the token before anything is created
            owner = self.owner or login
            target = _Target(owner, repo_name(task_id))
            options: dict[str, Any] = {
                "description": _marker(task_id),
                "private": self.private,
                # The Git Data API refuses an empty repo (409): start it with GitHub's README.
                "auto_init": True,
            }
            try:
                if owner.lower() == login.lower():
                    created = client.get_user().create_repo(target.name, **options)
                else:
                    created = client.get_organization(owner).create_repo(target.name, **options)
            except UnknownObjectException:
                raise BadInput(
                    f"GitHub owner {owner!r} is neither the token's user ({login}) nor an "
                    f"organization it can see at {self.api_url}",
                    hint="set AGENTFIRM_GITHUB_OWNER to your user or an organization you belong to",
                ) from None
            except GithubException as err:
                if err.status == 422 and "already exists" in str(err.data):
                    return self._reopen(client, target, task_id)
                raise
        finally:
            client.close()
        location = created.html_url
        with self._lock:
            self._branches[location] = created.default_branch
            self._fresh.add(location)
        log.info("repo.created", task_id=task_id, repo=location, private=self.private)
        return location

    def _reopen(self, client: Github, target: _Target, task_id: str) -> str:
        existing = self._repo(client, target)
        if existing.description != _marker(task_id):
            raise BadInput(
                f"a GitHub repo named {target.full_name} already exists",
                hint="delete or rename it, or set AGENTFIRM_GITHUB_OWNER to another owner",
            )
        location = existing.html_url
        with self._lock:
            self._branches[location] = existing.default_branch
        log.info("repo.reopened", task_id=task_id, repo=location)
        return location

    def _commit(self, location: str, files: Mapping[str, bytes], message: str) -> str:
        from github import InputGitTreeElement

        client = self._client()
        try:
            repo = self._repo(client, _target(location))
            branch = repo.default_branch
            ref = repo.get_git_ref(f"heads/{branch}")
            head_sha = ref.object.sha  # completes the ref: its url is the one to update
            with self._lock:
                replace_readme = location in self._fresh
            elements = [
                InputGitTreeElement(
                    path,
                    "100644",
                    "blob",
                    sha=repo.create_git_blob(base64.b64encode(data).decode(), "base64").sha,
                )
                for path, data in sorted(files.items())
            ]
            if replace_readme:
                tree = repo.create_git_tree(elements)
                commit = repo.create_git_commit(message, tree, [])
                ref.edit(commit.sha, force=True)
            else:
                head = repo.get_git_commit(head_sha)
                tree = repo.create_git_tree(elements, base_tree=head.tree)
                commit = repo.create_git_commit(message, tree, [head])
                ref.edit(commit.sha)
        finally:
            client.close()
        with self._lock:
            self._fresh.discard(location)
            self._branches[location] = branch
        return commit.sha

    def _default_branch(self, target: _Target) -> str:
        client = self._client()
        try:
            return self._repo(client, target).default_branch
        finally:
            client.close()

    def _read(self, location: str, path: str) -> bytes | None:
        from github import UnknownObjectException

        client = self._client()
        try:
            content = self._repo(client, _target(location)).get_contents(path)
        except UnknownObjectException:
            return None
        finally:
            client.close()
        if isinstance(content, list):
            raise BadInput(f"{path} in {location} is a directory, not a file")
        return content.decoded_content

    async def _call(self, work: Callable[[], T]) -> T:
        """Run PyGithub work in a thread; its errors become one-line ``AgentfirmError``s."""
        try:
            return await asyncio.to_thread(work)
        except AgentfirmError:
            raise
        except Exception as err:
            raise self._translate(err) from err

    def _translate(self, err: Exception) -> AgentfirmError:
        from github import BadCredentialsException, GithubException
        from requests import RequestException

        if isinstance(err, BadCredentialsException):
            return BadInput(
                f"GitHub rejected {TOKEN_NAME} (401 Bad credentials) at {self.api_url}",
                hint=_TOKEN_HINT,
            )
        if isinstance(err, GithubException):
            detail = _github_message(err)
            if err.status == 403:
                return BadInput(
                    f"{TOKEN_NAME} may not do this at {self.api_url} (403: {detail})",
                    hint="give the token the repo scope, or check the owner's permissions",
                )
            return AgentfirmError(
                f"GitHub answered {err.status} at {self.api_url}: {detail}",
                hint="check AGENTFIRM_GITHUB_API_URL and GitHub's status, then retry",
            )
        if isinstance(err, RequestException):
            return AgentfirmError(
                f"cannot reach GitHub at {self.api_url}: {type(err).__name__}",
                hint="check the network and AGENTFIRM_GITHUB_API_URL",
            )
        return AgentfirmError(f"GitHub call failed: {type(err).__name__}: {err}")


def _github_message(err: Any) -> str:
    data = err.data
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        errors = data.get("errors")
        if isinstance(errors, list):
            details = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors]
            message = "; ".join(filter(None, [message, *details]))
        if message:
            return message
    return str(err.message or "no message")


def repos_for(
    settings: Settings, secrets: SecretStore, in_flight: InFlight | None = None
) -> RepoBackend:
    """The task repo backend the settings select: local git repos under the data dir (their
    writes and commits marked in ``in_flight`` while they run), or GitHub (token
    ``GITHUB_TOKEN`` from the secret store, read on each use)."""
    if settings.repo_backend == "github":
        return GitHubRepos(
            token=lambda: secrets.get(TOKEN_NAME),
            owner=settings.github_owner,
            api_url=settings.github_api_url,
        )
    return LocalGitRepos(settings.paths.repos_dir, in_flight)
