"""The Master's side of a task's git repo: published at hand-off (spec, persona, notebook and the
attachments' text, in one commit), and found again before the build runs — a local repo deleted
since is written again from the store, so the task goes on instead of failing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from agentfirm.build_master.attachments import Attachments
from agentfirm.bus.base import Bus
from agentfirm.domain.models import TaskSpec
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import publish_task_repo, restore_task_repo
from agentfirm.personas.library import PersonaLibrary
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)


@dataclass
class TaskRepos:
    store: Store
    bus: Bus
    repos: RepoBackend
    personas: PersonaLibrary
    attachments: Attachments | None
    requirement: str
    """How task notebooks install agentfirm instead of the repo's wheel (a setting)."""
    redact: Callable[[str], str] | None
    """Scrubs secrets from the attachments' text before it is committed."""

    async def publish(self, task_id: str, spec: TaskSpec) -> str | None:
        """Publish the task repo in one commit and keep its location with the task. Returns
        where the notebook can be launched, if anywhere."""
        redact = self.redact or (lambda text: text)
        documents = await self.attachments.texts(task_id) if self.attachments is not None else {}
        published = await publish_task_repo(
            self.repos,
            spec,
            persona=self.personas.get(spec.persona),
            requirement=self.requirement,
            attachments={name: redact(text) for name, text in documents.items()},
        )
        task = await self.store.get_task(task_id)
        task.repo_path = published.location
        await self.store.save_task(task)
        return published.launch_url

    async def location(self, task_id: str, spec: TaskSpec) -> str:
        """The task repo's location; a local one deleted since the hand-off is written again
        from the store first (``repo.restored``)."""
        task = await self.store.get_task(task_id)
        if task.repo_path is None:
            return await self.repos.create(task_id)
        restored = await restore_task_repo(
            self.repos, spec, task.repo_path, persona=self.personas.get(spec.persona)
        )
        if restored is None:
            return task.repo_path
        log.warning("repo.restored", task_id=task_id, repo=restored.location)
        await self.bus.publish(
            task_id, "repo.restored", {"repo": restored.location, "commit": restored.commit}
        )
        return restored.location
