"""Module outputs for the API: the latest artifact of each module of a task, listed, and one of
them rendered as Markdown (what the front ends' output viewers show). Read-only over the store;
the server redacts what it returns."""

from __future__ import annotations

import json
from typing import Any

from agentfirm.domain.models import Artifact
from agentfirm.errors import NotFound
from agentfirm.outputs.types import render_markdown
from agentfirm.store.base import Store


def _markdown(artifact: Artifact) -> str:
    try:
        return render_markdown(artifact.output_type, artifact.content, level=1)
    except NotFound:  # a type this version no longer knows: show the data rather than nothing
        body = json.dumps(artifact.content, indent=2, ensure_ascii=False, default=str)
        return f"# {artifact.module_id}\n\n```json\n{body}\n```\n"


def _meta(artifact: Artifact, markdown: str) -> dict[str, Any]:
    return {
        "module_id": artifact.module_id,
        "kind": artifact.output_type,
        "version": artifact.version,
        "created_at": artifact.created_at.isoformat(),
        "size": len(markdown.encode("utf-8")),
    }


async def artifact_rows(store: Store, task_id: str) -> list[dict[str, Any]]:
    """The latest artifact of each module, by module id: ``module_id``, ``kind`` (its output
    type), ``version``, ``created_at``, ``size`` (bytes of its Markdown). ``NotFound`` for an
    unknown task."""
    await store.get_task(task_id)
    latest = await store.latest_artifacts(task_id)
    return [_meta(a, _markdown(a)) for _id, a in sorted(latest.items())]


async def artifact_output(store: Store, task_id: str, module_id: str) -> dict[str, Any]:
    """A module's latest output as Markdown with its metadata. ``NotFound`` for an unknown task,
    a module the task does not have, or one with no output yet."""
    task = await store.get_task(task_id)
    latest = await store.latest_artifacts(task_id)
    artifact = latest.get(module_id)
    if artifact is None:
        planned = [m.id for m in task.spec.plan.modules] if task.spec else []
        if module_id in planned:
            raise NotFound(
                f"module {module_id} of task {task_id} has no output yet",
                hint="it appears once the module has run",
            )
        known = sorted({*planned, *latest})
        raise NotFound(
            f"task {task_id} has no module {module_id}",
            hint=("modules: " + ", ".join(known)) if known else "the task has no plan yet",
        )
    markdown = _markdown(artifact)
    return {"task_id": task_id, **_meta(artifact, markdown), "markdown": markdown}
