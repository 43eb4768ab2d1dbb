"""When a SQLite file was last found whole, so ``PRAGMA quick_check`` — which reads every page,
about a second for a million ledger rows — runs only after a change that may have damaged it.

Both answers come from the files' status (size, modification time, inode), which anything written
into a file changes — a torn write, a bad sector, another program — where SQLite's own counters
(``PRAGMA data_version``) see only commits made through SQLite. Not the change time: SQLite, run as
root, sets a file's owner as it opens it, which is a change.

Across processes (``stamp``, ``marked_whole``, ``mark_whole``): the status of the file and of its
WAL as a check found them whole is kept beside it in ``<file>-checked``, and a command opening the
file compares first. Any write since, a torn one included, changes it, and the next open checks
again.

Within the daemon (``OwnWrites``), which checks its store before each request that writes: its own
writes change the file between any two requests, so they must not count as changes. Only the main
file is watched, not its WAL. In WAL mode a commit appends to the WAL; the main file is written
only by a checkpoint, which the shared connection runs as it commits (the inline one never does,
see ``inline``): so only the shared connection's writes are looked at, just before and just after
— found as it was left, the write is the only change and the file as left after it is still known;
found otherwise, something else wrote, and it is unknown until the next check. The inline writes,
most of them, cost nothing more. What another process writes through SQLite is checked once it
reaches the main file by that process's checkpoint (the WAL's frames carry checksums of their own,
and a frame that fails them is not read, so a check of it would find nothing). A change by
anything else in the instant of one of our checkpoints is not told apart from it (a window of one
commit's length): telling it apart would mean reading what the checkpoint wrote.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

Status = tuple[int, int, int, int]
"""A file's device, inode, size and modification time (ns)."""


def status(path: Path | str) -> Status | None:
    """``path``'s status now; None when it cannot be read."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def stamp(path: Path) -> str:
    """The status of ``path`` and its WAL, as kept in the marker ("" when either cannot be read;
    "-" for a WAL that does not exist). Taken before a check: what the check then reads."""
    parts = []
    for part in (path, path.with_name(path.name + "-wal")):
        if not part.exists():
            parts.append("-")
            continue
        seen = status(part)
        if seen is None:
            return ""
        parts.append(":".join(map(str, seen)))
    return " ".join(parts)


def _marker(path: Path) -> Path:
    return path.with_name(path.name + "-checked")


def marked_whole(path: Path, stamp: str) -> bool:
    """The file and its WAL, as ``stamp`` says they are, are as the last check of any process
    found them whole."""
    if not stamp:
        return False
    try:
        return _marker(path).read_text(encoding="utf-8") == stamp
    except (OSError, UnicodeDecodeError):
        return False


def mark_whole(path: Path, stamp: str) -> None:
    """Keep ``stamp``, the status of the file and its WAL just found whole, for ``marked_whole``."""
    if stamp:
        # Only a saved check is lost if this fails (a full disk, a read-only folder).
        with contextlib.suppress(OSError):
            _marker(path).write_text(stamp, encoding="utf-8")


class OwnWrites:
    """The status of the file at ``path`` as this store last left it, when only its own writes
    changed it since it was last found whole (``known``); None: unknown."""

    def __init__(self, path: Path) -> None:
        self._file = str(path)
        self.known: Status | None = None

    def seen(self) -> Status | None:
        """The file's status now (None when it cannot be read)."""
        return status(self._file)

    def unchanged(self) -> bool:
        """Nothing but our own writes changed the file since it was last found whole."""
        return self.known is not None and self.seen() == self.known

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Around a write on the shared connection (its commit, which may checkpoint, included),
        under the store's lock."""
        before = self.seen() if self.known is not None else None
        try:
            yield
        finally:
            if before is not None and before == self.known:
                self.known = self.seen()
            else:
                self.known = None
