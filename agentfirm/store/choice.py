"""Which store the settings select, built without importing the others (a read command that
opens only the store must not pay for the rest of the application)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agentfirm.paths import Paths
    from agentfirm.settings import Settings
    from agentfirm.store.base import Store


def store_for(settings: Settings, *, reads_only: bool = False) -> Store:
    """The system of record the settings name: Postgres (Supabase too) for a ``postgresql://``
    URL — its hot reads served from a local SQLite cache unless ``store_cache`` is off — else
    the embedded SQLite file. Not opened yet. ``reads_only``: for a command that only reads
    (the SQLite file then skips its full integrity check, see ``SQLiteStore``)."""
    url = settings.database_url
    if url and url.startswith(("postgresql://", "postgres://")):
        if settings.store_cache:
            from agentfirm.store.cache import CachedStore, cache_path

            return CachedStore(url, cache_path(settings.paths.data_dir, url))
        from agentfirm.store.postgres import PostgresStore

        return PostgresStore(url)
    from agentfirm.store.sqlite import SQLiteStore

    path = sqlite_path(url, settings.paths)
    assert path is not None  # not a Postgres URL: the settings allow no other
    return SQLiteStore(path, reads_only=reads_only)


def sqlite_path(database_url: str | None, paths: Paths) -> Path | None:
    """The SQLite file ``database_url`` names (unset: the one in the data dir); None for a
    Postgres URL."""
    if database_url is None:
        return paths.db_path
    if database_url.startswith("sqlite:///"):
        return Path(database_url.removeprefix("sqlite:///"))
    return None
