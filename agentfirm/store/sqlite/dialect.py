"""How the shared SQL body (``agentfirm.store.sql``) speaks SQLite: times as fixed-width ISO text,
JSON as text, integrity errors told apart by their extended code, the writer's clock."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agentfirm.store.sql.access import Clock, Dialect, Fault
from agentfirm.store.sqlite.basics import from_db_time, opt_to_db_time, to_db_time

if TYPE_CHECKING:
    from pydantic import BaseModel

_FAULTS: dict[str, Fault] = {
    "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign_key",
    "SQLITE_CONSTRAINT_PRIMARYKEY": "conflict",
    "SQLITE_CONSTRAINT_UNIQUE": "conflict",
}


def _load(model: type[BaseModel], row: Any) -> BaseModel:
    # Imported at the first load: a plain read (``reader``) never loads a model, nor pydantic.
    from agentfirm.store.sqlite.rows import LOADERS

    loaded: BaseModel = LOADERS[model](row)
    return loaded


def _read_time(value: Any) -> datetime:
    return from_db_time(value)


def _fault(err: Exception) -> Fault | None:
    if not isinstance(err, sqlite3.IntegrityError):
        return None
    return _FAULTS.get(err.sqlite_errorname)


def _any_of(column: str, values: Sequence[str]) -> tuple[str, Any]:
    # One JSON parameter, not one per value: any number of values, still one statement.
    return f"{column} IN (SELECT value FROM json_each(?))", json.dumps(list(values))


def _clock(ttl: timedelta) -> Clock:
    # The file is shared by one machine only: the writer's clock is everyone's.
    now = datetime.now(UTC)
    return Clock("?", (to_db_time(now),), "?", (to_db_time(now + ttl),))


SQLITE = Dialect(
    # Every write transaction holds the file's write lock from its ``BEGIN IMMEDIATE``, so no
    # read needs to lock its row.
    for_update="",
    time=to_db_time,
    opt_time=opt_to_db_time,
    json=json.dumps,
    loader=_load,
    fault=_fault,
    any_of=_any_of,
    clock=_clock,
    read_time=_read_time,
)
