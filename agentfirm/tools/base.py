"""The seam between the agent loop and what it calls: a ``Tool`` is a spec and an async call."""

from __future__ import annotations

from typing import Any, Protocol

from agentfirm.domain.tools import ToolSpec
from agentfirm.errors import AgentfirmError


class ToolError(AgentfirmError):
    """A tool could not answer (bad arguments, server down, refused URL). The loop hands the
    message to the model as an error result; it never ends the module by itself."""


class Tool(Protocol):
    @property
    def spec(self) -> ToolSpec: ...

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the tool and return what the model reads; raise ``ToolError`` when it cannot."""
        ...
