"""System of record: the ``Store`` protocol and its implementations.

``Store`` is imported when first named: a plain reader of the SQLite file
(``agentfirm.store.sqlite.reader``), in this package too, must not load the models it names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentfirm.store.base import Store

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    if name == "Store":
        from agentfirm.store.base import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
