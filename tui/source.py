"""The seam between the screens and the daemon: ``Source`` is what the TUI reads and does.
``DaemonApi`` (``client.py``) is the real one; tests and the bench pass a fake with fixed data, so
snapshots are stable and no daemon is needed to draw a screen."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

DELIVERABLE = "_deliverable"


@dataclass(frozen=True)
class Decision:
    """A human's answer to an approval (see ``StoreDecider.decide``)."""

    decision: str
    """``approved``, ``rejected``, ``aborted``; ``revise`` (review); ``retry``, ``skip``
    (failure)."""
    notes: str = ""
    budget_usd: Decimal | None = None
    modules: tuple[str, ...] = ()
    answers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Submission:
    request: str
    persona: str | None = None
    budget_usd: Decimal | None = None
    offline: bool = False
    attachments: tuple[str, ...] = ()
    runner: str | None = None
    actor: str | None = None
    """Who submits (``tui:ann``); sent only to a daemon that takes it."""


class Source(Protocol):
    async def tasks(self, *, limit: int = 200) -> list[dict[str, Any]]: ...

    async def task(self, task_id: str) -> dict[str, Any]: ...

    async def costs(self, task_id: str) -> dict[str, Any]: ...

    async def approvals(self, task_id: str, *, pending: bool = False) -> list[dict[str, Any]]: ...

    async def artifact(self, task_id: str, module_id: str) -> dict[str, Any]:
        """A module's latest output (``markdown`` and metadata); ``NotFound`` when it has none
        (or the daemon cannot tell)."""
        ...

    async def decide(
        self, approval_id: str, decision: Decision, *, actor: str
    ) -> dict[str, Any]: ...

    async def submit(self, submission: Submission) -> dict[str, Any]: ...

    async def cancel(self, task_id: str, *, reason: str, actor: str) -> dict[str, Any]: ...

    async def personas(self) -> list[dict[str, Any]]: ...

    async def submission_fields(self) -> frozenset[str]: ...

    def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]: ...

    async def aclose(self) -> None: ...


def module_section(markdown: str, module_id: str) -> str | None:
    """A module's own output from a draft: its ``### Title (`id`)`` section of the appendix
    (``deliverable_markdown``), heading included; None when the draft has none."""
    heading = re.compile(rf"^### .*\(`{re.escape(module_id)}`\)\s*$", re.MULTILINE)
    found = heading.search(markdown)
    if found is None:
        return None
    following = re.compile(r"^#{1,3} ", re.MULTILINE).search(markdown, found.end())
    end = following.start() if following else len(markdown)
    return markdown[found.start() : end].strip() + "\n"


async def module_output(source: Source, task_id: str, module_id: str) -> str | None:
    """The markdown to show for a module (or ``_deliverable``): from the task's deliverable file
    once it is committed, else from its latest draft. None when no draft exists yet."""
    detail = await source.task(task_id)
    path = detail.get("deliverable_path")
    markdown: str | None = None
    if path:
        try:
            markdown = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        except OSError:
            markdown = None
    if markdown is None:
        drafts = [
            a["payload"]["draft_markdown"]
            for a in await source.approvals(task_id)
            if a.get("kind") == "review" and a.get("payload", {}).get("draft_markdown")
        ]
        markdown = drafts[-1] if drafts else None
    if markdown is None or module_id == DELIVERABLE:
        return markdown
    return module_section(markdown, module_id)
