"""The files a task submitted to the daemon reads (its attachments): paths on the daemon's machine,
checked before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agentfirm.api.models import MAX_ATTACHMENTS
from agentfirm.errors import BadInput


def attachment_paths(paths: Sequence[str]) -> list[Path]:
    """Absolute paths of readable files on this machine. Raises ``BadInput`` naming the first
    that is not, before anything is written."""
    if len(paths) > MAX_ATTACHMENTS:
        raise BadInput(f"{len(paths)} attachments; at most {MAX_ATTACHMENTS} per task")
    files = []
    for raw in paths:
        path = Path(raw)
        try:
            readable = path.is_absolute() and path.is_file()
        except (OSError, ValueError):
            readable = False
        if not readable:
            raise BadInput(
                f"attachment {raw!r} is not a readable file on the daemon's machine",
                hint="give an absolute path to an existing file",
            )
        files.append(path)
    return files
