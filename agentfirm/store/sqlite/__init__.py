"""The SQLite backend of the ``Store``: what differs from the shared SQL body
(``agentfirm.store.sql``) — the file's connections, the dialect, the bookings by trigger and their
inline fast path — and a plain reader of the file (``reader``).

``SQLiteStore`` is imported when first named: the plain reader, in this package too, must not
load the store's asyncio, aiosqlite and models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentfirm.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]


def __getattr__(name: str) -> Any:
    if name == "SQLiteStore":
        from agentfirm.store.sqlite.store import SQLiteStore

        return SQLiteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
