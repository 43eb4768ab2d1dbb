"""What the shared SQL body needs of a backend: a transaction to run statements in, reads, and a
``Dialect`` saying how values travel and how errors read.

Shared statements are written with ``?`` placeholders (a backend that spells them otherwise
translates them in its ``Tx`` and its ``_fetch``) and use only SQL both backends speak.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar, cast

from agentfirm.errors import NotFound

if TYPE_CHECKING:  # a read of plain rows (``reads``) loads no pydantic
    from pydantic import BaseModel

M = TypeVar("M", bound="BaseModel")

Fault = Literal["foreign_key", "conflict"]
"""What a failed write ran into: a missing parent row, or a row that already exists."""

TASKS_HINT = "run `agentfirm tasks list` to see task ids"


class Row(Protocol):
    """A result row, read by column name (``sqlite3.Row`` and psycopg's dict rows both are)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Tx(Protocol):
    """Statements inside one write transaction."""

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    async def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Run one statement; the rows it returned (``Row``s)."""


@dataclass(frozen=True)
class Clock:
    """A lease's times as SQL: ``now`` and ``until`` (now + ttl) with their parameters. SQLite
    binds the writer's clock; Postgres reads the server's, so workers whose clocks differ agree."""

    now: str
    now_params: tuple[Any, ...]
    until: str
    until_params: tuple[Any, ...]


@dataclass(frozen=True)
class Dialect:
    """How one backend stores values, reads rows, reports errors and tells the time."""

    for_update: str
    """Appended to a read that must lock its row until the transaction ends ("" where the
    transaction itself holds the whole database's write lock)."""
    time: Callable[[datetime], Any]
    opt_time: Callable[[datetime | None], Any]
    json: Callable[[Any], Any]
    """A JSON column's value."""
    loader: Callable[[type[BaseModel], Any], BaseModel]
    """A row as an instance of the model given."""
    fault: Callable[[Exception], Fault | None]
    """What an integrity error ran into; None for another error (re-raised)."""
    any_of: Callable[[str, Sequence[str]], tuple[str, Any]]
    """``column`` is one of ``values``, as a condition with one parameter (any number of
    values, one statement)."""
    clock: Callable[[timedelta], Clock]
    """Now, and now + the ttl given."""
    read_time: Callable[[Any], datetime]
    """A time column's value as an aware datetime, as the models load it (for plain reads)."""

    def load(self, model: type[M], row: Row) -> M:
        return cast(M, self.loader(model, row))

    @contextmanager
    def refusals(
        self, *, missing: Exception | None = None, taken: Exception | None = None
    ) -> Iterator[None]:
        """The block's integrity errors raised as ``missing`` (a parent row is missing) or
        ``taken`` (the row exists already), when given; any other error as it is."""
        try:
            yield
        except Exception as err:
            found = {"foreign_key": missing, "conflict": taken}.get(self.fault(err) or "")
            if found is None:
                raise
            raise found from err


class SqlAccess(ABC):
    """A store's way into its database, as the shared body sees it; each backend's store
    implements it."""

    dialect: ClassVar[Dialect]

    @abstractmethod
    def _write(self) -> AbstractAsyncContextManager[Tx]:
        """One write transaction, committed when the block ends, rolled back on any exception."""

    @abstractmethod
    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows (``Row``s) of one read."""

    async def _fetch_by_key(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """``_fetch`` for a read of a row or two by key, which a backend may run where a larger
        read would not (SQLite: inline on the event loop)."""
        return await self._fetch(sql, params)

    async def _write_one(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One writing statement as its own transaction; the number of rows it changed. A
        backend whose single statements are atomic by themselves may skip BEGIN and COMMIT."""
        async with self._write() as tx:
            return await tx.run(sql, params)


def no_task(task_id: str) -> NotFound:
    return NotFound(f"task {task_id} not found", hint=TASKS_HINT)


def no_budget(task_id: str) -> NotFound:
    return NotFound(
        f"task {task_id} has no budget", hint="set one when approving the plan (--budget USD)"
    )
