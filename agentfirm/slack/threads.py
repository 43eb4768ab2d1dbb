"""Which Slack thread belongs to which task, and what the bridge already posted there: the
progress message, one prompt per approval, the last event seq handled. Kept in a small JSON file
in the state dir, so a restarted bridge resumes each unfinished task's stream from its seq
without asking anything twice."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

FILE_NAME = "slack_threads.json"


@dataclass
class TaskThread:
    task_id: str
    channel: str
    thread_ts: str
    progress_ts: str
    requester: str
    last_seq: int = 0
    prompts: dict[str, str] = field(default_factory=dict)
    """approval id → ts of the message asking it."""
    kinds: dict[str, str] = field(default_factory=dict)
    """approval id → its kind."""
    answered: list[str] = field(default_factory=list)
    """Approval ids whose prompt already shows who decided."""
    clarify: str | None = None
    """The clarify approval a thread reply answers, while one is pending."""
    completion: dict[str, Any] = field(default_factory=dict)
    """The ``task.completed`` payload (commit, quality), once seen."""


class ThreadBook:
    """Every task the bridge follows. ``path`` None keeps it in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._tasks: dict[str, TaskThread] = {}
        self._lock = asyncio.Lock()

    def load(self) -> list[TaskThread]:
        """Read the file (a missing or unreadable one is an empty book); returns the threads."""
        if self.path is None or not self.path.exists():
            return []
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
            self._tasks = {row["task_id"]: TaskThread(**row) for row in rows}
        except (OSError, ValueError, TypeError, KeyError) as err:
            log.warning("slack.threads_unreadable", path=str(self.path), error=str(err))
            self._tasks = {}
        return list(self._tasks.values())

    def add(self, thread: TaskThread) -> None:
        self._tasks[thread.task_id] = thread

    def get(self, task_id: str) -> TaskThread | None:
        return self._tasks.get(task_id)

    def in_thread(self, channel: str, thread_ts: str | None) -> TaskThread | None:
        for thread in self._tasks.values():
            if thread.channel == channel and thread.thread_ts == thread_ts:
                return thread
        return None

    def asking(self, approval_id: str) -> TaskThread | None:
        for thread in self._tasks.values():
            if approval_id in thread.kinds:
                return thread
        return None

    def drop(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)

    async def save(self) -> None:
        """Write the file atomically (off the event loop)."""
        if self.path is None:
            return
        async with self._lock:
            rows = [asdict(t) for t in self._tasks.values()]
            await asyncio.to_thread(_write_atomic, self.path, json.dumps(rows, indent=1))


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
