"""The PostgreSQL backend of the ``Store``: what differs from the shared SQL body
(``agentfirm.store.sql``) — the pool, the dialect, the bookings, the cost summaries."""

from agentfirm.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
