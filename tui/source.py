"""The seam between the screens and the daemon: ``Source`` is what the TUI reads and does — the
shared async client. Tests and the bench pass a fake daemon with fixed data (the same client,
answering from memory), so snapshots are stable and no daemon is needed to draw a screen."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from agentfirm.api.client import AsyncDaemonClient
from agentfirm.api.wire import Decision, Submission
from agentfirm.domain.calls import DELIVERABLE_ID

DELIVERABLE = DELIVERABLE_ID


Source = AsyncDaemonClient
"""What the screens read and do: the async client of the daemon (the one seam every front end
uses); tests pass ``tests.fakes.daemon.FakeDaemon``, the same client over fixed data."""


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


__all__ = ["DELIVERABLE", "Decision", "Source", "Submission", "module_output", "module_section"]
