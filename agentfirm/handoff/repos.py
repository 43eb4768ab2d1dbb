"""Task repos: one git repository per approved task, holding its spec, notebook and results.

``RepoBackend`` is the seam; ``LocalGitRepos`` keeps the repos under the data dir with the ``git``
CLI and needs no git configuration of its own.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Protocol

import structlog

from agentfirm.errors import AgentfirmError, BadInput, DiskFull

if TYPE_CHECKING:
    from agentfirm.domain.calls import InFlight

log = structlog.get_logger(__name__)

# Identity and settings passed on every call, so a machine without (or with an unusual) global git
# config behaves the same: no signing prompts, no user hooks.
_GIT_CONFIG = (
    "-c",
    "user.name=agentfirm",
    "-c",
    "user.email=agentfirm@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "core.hooksPath=/dev/null",
)
_GIT = "git"
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")


class RepoBackend(Protocol):
    async def create(self, task_id: str) -> str:
        """Create (or reopen) the task's repo; returns its location (a path or a URL)."""

    async def write_files(self, repo: str, files: Mapping[str, str | bytes]) -> None:
        """Write files (relative POSIX paths → text or bytes) into the repo, uncommitted."""

    async def commit(self, repo: str, message: str) -> str:
        """Commit everything written so far in ONE commit; returns the commit sha."""

    async def read_file(self, repo: str, path: str) -> bytes | None:
        """The content of ``path`` as last committed or written, or ``None`` when it is absent."""


def checked_relpath(path: str) -> PurePosixPath:
    """``path`` as a relative path inside a repo. Raises ``BadInput`` for an empty or absolute
    path, a ``..`` part, or a path into ``.git``."""
    pure = PurePosixPath(path)
    problem = None
    if not path.strip() or not pure.parts:
        problem = "is empty"
    elif pure.is_absolute() or re.match(r"^[A-Za-z]:", path) or "\\" in path:
        problem = "must be a relative POSIX path"
    elif ".." in pure.parts:
        problem = "must not contain '..'"
    elif pure.parts[0] == ".git":
        problem = "must not point into .git"
    if problem:
        raise BadInput(f"repo file path {path!r} {problem}", hint="use a path like docs/report.md")
    return pure


class LocalGitRepos:
    """Task repos as local git repositories under ``root`` (one directory per task, branch
    ``main``). Writes and commits are brief and never cut in half (a ``git add`` killed midway
    leaves the index locked): a cancellation waits for them to end, then is raised; while they
    run they are marked ``finishing`` in ``in_flight``, so that a stop names what it waits for."""

    def __init__(self, root: Path, in_flight: InFlight | None = None) -> None:
        self.root = root
        self.in_flight = in_flight

    def _finishing(self, what: str) -> AbstractContextManager[None]:
        return self.in_flight.finishing(what) if self.in_flight is not None else nullcontext()

    async def create(self, task_id: str) -> str:
        if not _SAFE_NAME.fullmatch(task_id):
            raise BadInput(
                f"task id {task_id!r} cannot name a repo directory",
                hint="use letters, digits, '.', '_' and '-'",
            )
        path = self.root / task_id
        if not (path / ".git").is_dir():
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            await _git(path, "init", "--quiet", "-b", "main")
            # A clone that ran the notebook elsewhere pushes its outputs back to main; the
            # checked-out tree follows (refused, and left untouched, if it had local edits).
            await _git(path, "config", "receive.denyCurrentBranch", "updateInstead")
            log.info("repo.created", task_id=task_id, repo=str(path))
        return str(path)

    async def is_clone(self, repo: str) -> bool:
        """Whether ``repo`` is a clone of a task repo (it has an ``origin``), not the task repo."""
        return "origin" in (await _git(Path(repo), "remote")).split()

    async def push(self, repo: str) -> None:
        """Push a clone's branch back to its ``origin``. Raises ``AgentfirmError`` on failure."""
        await _git(Path(repo), "push", "--quiet", "origin", "HEAD")

    async def lost(self, repo: str) -> bool:
        """Whether the repo at ``repo`` is gone (its directory or its ``.git`` deleted): the
        store still holds what it held, so it can be written again."""
        return not await asyncio.to_thread((Path(repo) / ".git").is_dir)

    async def write_files(self, repo: str, files: Mapping[str, str | bytes]) -> None:
        from agentfirm.router.attempt import finish

        root = Path(repo)
        targets = {root.joinpath(checked_relpath(name)): data for name, data in files.items()}
        with self._finishing(f"the outputs to be written to {repo}"):
            await finish(asyncio.to_thread(_write_all, root, targets))

    async def read_file(self, repo: str, path: str) -> bytes | None:
        target = Path(repo).joinpath(checked_relpath(path))

        def read() -> bytes | None:
            return target.read_bytes() if target.is_file() else None

        return await asyncio.to_thread(read)

    async def commit(self, repo: str, message: str) -> str:
        from agentfirm.router.attempt import finish

        with self._finishing(f"the git commit in {repo}"):
            return await finish(self._commit(repo, message))

    async def _commit(self, repo: str, message: str) -> str:
        path = Path(repo)
        await _git(path, "add", "--all")
        await _git(path, "commit", "--quiet", "--allow-empty", "-m", message)
        sha = (await _git(path, "rev-parse", "HEAD")).strip()
        log.info("repo.committed", repo=repo, commit=sha)
        return sha


def _write_all(root: Path, targets: Mapping[Path, str | bytes]) -> None:
    real_root = root.resolve()
    for target, data in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        # A symlink inside the repo must not carry a write outside it.
        if not target.parent.resolve().is_relative_to(real_root):
            raise BadInput(
                f"repo file path {target} leaves the repo {root}",
                hint="remove the symlink or choose another path",
            )
        if isinstance(data, bytes):
            target.write_bytes(data)
        else:
            target.write_text(data, encoding="utf-8")


_NO_SPACE = "No space left on device"
"""How git says ENOSPC (strerror, which git prints) in the C locale it runs in (``_git_env``)."""


def _git_env() -> dict[str, str]:
    """This process's environment with git's messages untranslated: under another language
    (``LANG``, ``LANGUAGE``) git and strerror speak it, and a full disk would not be known.
    ``LC_ALL=C`` also makes gettext ignore ``LANGUAGE``; file contents and commit messages are
    bytes to git, so nothing written changes."""
    env = {name: value for name, value in os.environ.items() if name != "LANGUAGE"}
    env["LC_ALL"] = "C"
    return env


async def _git(cwd: Path, *args: str) -> str:
    """Run ``git`` in ``cwd``; returns stdout. Raises ``AgentfirmError`` when git is missing or
    the command fails (with git's own message)."""
    try:
        process = await asyncio.create_subprocess_exec(
            _GIT,
            *_GIT_CONFIG,
            *args,
            cwd=cwd,
            env=_git_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as err:
        raise AgentfirmError(
            "git is not installed (needed for local task repos)",
            hint="install git, e.g. `apt install git` or `brew install git`",
        ) from err
    try:
        stdout, stderr = await process.communicate()
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        said = stderr.decode(errors="replace")
        lines = said.strip().splitlines()
        detail = lines[-1] if lines else f"exit status {process.returncode}"
        if _NO_SPACE in said:  # the task stops resumably, as for any other full disk
            raise DiskFull(cwd, f"git {args[0]}: {detail}")
        raise AgentfirmError(
            f"git {args[0]} failed in {cwd}: {detail}",
            hint="check that the directory is a git repo and the disk is writable",
        )
    return stdout.decode(errors="replace")
