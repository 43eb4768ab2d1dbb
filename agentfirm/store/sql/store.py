"""The one SQL body of the ``Store``: every concern's shared methods, for a backend to complete
with its connections (``SqlAccess``), its ``Dialect`` and its budget bookings."""

from __future__ import annotations

from abc import abstractmethod
from types import TracebackType
from typing import Self

from agentfirm.store.sql.approvals import SqlApprovals, SqlEvents
from agentfirm.store.sql.budgets import SqlBudgets
from agentfirm.store.sql.leases import SqlLeases
from agentfirm.store.sql.reads import SqlReads
from agentfirm.store.sql.tasks import SqlTasks


class SqlStore(SqlTasks, SqlBudgets, SqlApprovals, SqlEvents, SqlLeases, SqlReads):
    """All but a backend's own part: ``open``, ``close``, ``_write``, ``_fetch``, ``dialect``,
    and ``reserve``, ``settle``, ``record_call``, ``release_reservations``."""

    @abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
