"""Event bus: the ``Bus`` protocol and its implementations."""

from agentfirm.bus.base import Bus

__all__ = ["Bus"]
