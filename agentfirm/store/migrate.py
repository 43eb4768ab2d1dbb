"""Schema migrations: numbered plain-SQL files shipped in the package, applied in order once each.

A migration file is ``NNNN_name.sql`` in ``agentfirm/store/<directory>/``. Applied versions are kept
in a ``schema_migrations`` table. The runner is backend-neutral: each backend supplies a
``MigrationTarget`` that already holds an exclusive transaction (so two processes opening the same
database at once apply each migration exactly once, and a failed migration leaves nothing behind).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

SCHEMA_MIGRATIONS_DDL = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
)"""

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


class MigrationTarget(Protocol):
    """One connection inside an exclusive transaction that the caller commits or rolls back."""

    async def run_script(self, sql: str) -> None:
        """Execute a script of one or more ``;``-terminated statements."""

    async def applied_versions(self) -> set[int]: ...

    async def record_version(self, migration: Migration, applied_at: datetime) -> None: ...


def load_migrations(
    package: str = "agentfirm.store", directory: str = "migrations"
) -> list[Migration]:
    """Every ``NNNN_name.sql`` file of ``package``/``directory``, in version order. A ``.sql`` file
    with another name, or two files with one version, is a packaging bug: ``ValueError``."""
    found: dict[int, Migration] = {}
    for entry in resources.files(package).joinpath(directory).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise ValueError(f"migration file {entry.name} must be named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migration files have version {version}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(target: MigrationTarget, migrations: list[Migration]) -> list[Migration]:
    """Apply the migrations not yet recorded in ``schema_migrations``; return those applied."""
    await target.run_script(SCHEMA_MIGRATIONS_DDL + ";")
    applied = await target.applied_versions()
    pending = [m for m in migrations if m.version not in applied]
    for migration in pending:
        await target.run_script(migration.sql)
        await target.record_version(migration, datetime.now(UTC))
        log.info("store.migrated", version=migration.version, name=migration.name)
    return pending
