"""How the shared SQL body (``agentfirm.store.sql``) speaks PostgreSQL: native times and JSONB,
row locks, the server's clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from agentfirm.store.postgres.conn import opt_utc, utc
from agentfirm.store.sql.access import Clock, Dialect, Fault


def _load(model: type[BaseModel], row: Any) -> BaseModel:
    return model.model_validate(row)


def _fault(err: Exception) -> Fault | None:
    if isinstance(err, pg_errors.ForeignKeyViolation):
        return "foreign_key"
    if isinstance(err, pg_errors.UniqueViolation):
        return "conflict"
    return None


def _any_of(column: str, values: Sequence[str]) -> tuple[str, Any]:
    return f"{column} = ANY(?)", list(values)


def _clock(ttl: timedelta) -> Clock:
    # The server's clock: workers on machines whose clocks disagree still agree on expiry.
    return Clock("now()", (), "now() + ?", (ttl,))


POSTGRES = Dialect(
    # Concurrent writers serialise on the rows they lock.
    for_update=" FOR UPDATE",
    time=utc,
    opt_time=opt_utc,
    json=Jsonb,
    loader=_load,
    fault=_fault,
    any_of=_any_of,
    clock=_clock,
    read_time=utc,
)
