"""System of record: the ``Store`` protocol and its implementations."""

from agentfirm.store.base import Store

__all__ = ["Store"]
