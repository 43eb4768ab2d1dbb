"""One SQL implementation of the ``Store`` for every backend; ``agentfirm.store.sqlite`` and
``agentfirm.store.postgres`` add only what differs (connections, dialect, bookings)."""
