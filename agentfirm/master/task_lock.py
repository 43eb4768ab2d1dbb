"""One process drives a task at a time: an advisory lock file per task.

The OS releases the lock when its holder dies (even by SIGKILL), so a crashed run never blocks the
``resume`` that picks its task up."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from agentfirm.errors import BadInput


class TaskLocks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._held: dict[str, int] = {}

    def acquire(self, task_id: str) -> None:
        """Take the task's lock (idempotent in this process). Raises ``BadInput`` when another
        live process holds it."""
        if task_id in self._held:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f"{task_id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BadInput(
                f"task {task_id} is being driven by another agentfirm process",
                hint="wait for it, or stop that process first",
            ) from None
        self._held[task_id] = fd

    def held(self, task_id: str) -> bool:
        """Whether a live process (this one included) holds the task's lock: something drives
        the task. Takes nothing: a free lock is let go at once."""
        if task_id in self._held:
            return True
        path = self.directory / f"{task_id}.lock"
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a lock taken just now
        return False

    def release_all(self) -> None:
        for fd in self._held.values():
            os.close(fd)  # closing the descriptor drops the flock
        self._held.clear()
