"""Talking to one MCP server with the official ``mcp`` SDK: start or reach it, list its tools,
call them.

A server that cannot start (a bad command), dies on start (its last stderr line says why) or does
not answer within ``start_timeout_s`` raises ``ToolError`` with one line saying which and why, so
``agentfirm tools list`` and ``config check`` can report it and a run needing it stops before it
spends. Tools keep the server's name and annotations: one that may change things
(``destructiveHint``, or not ``readOnlyHint``) is marked ``side_effects``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, TextIO, cast

from agentfirm.domain.tools import ToolSpec
from agentfirm.tools.base import ToolError
from agentfirm.tools.mcp_config import HttpServer, ServerConfig, StdioServer

if TYPE_CHECKING:
    from mcp import Client
    from mcp_types import CallToolResult
    from mcp_types import Tool as McpTool

START_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 60.0
MAX_RESULT_CHARS = 40_000
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def model_name(server: str, tool: str) -> str:
    """The name the model sees for ``tool`` of ``server``: ``server__tool``, within the 64
    characters every provider accepts."""
    return _UNSAFE.sub("_", f"{server}__{tool}")[:64]


def _side_effects(tool: McpTool) -> bool:
    hints = tool.annotations
    if hints is None:
        return True  # unannotated: assume it may change things, so a human is asked
    return bool(hints.destructive_hint) or hints.read_only_hint is not True


def _spec(server: str, tool: McpTool) -> ToolSpec:
    return ToolSpec(
        name=model_name(server, tool.name),
        description=tool.description or tool.name,
        input_schema=dict(tool.input_schema),
        source="mcp",
        origin=f"mcp:{server}/{tool.name}",
        side_effects=_side_effects(tool),
    )


def result_text(result: CallToolResult) -> str:
    """What the model reads of a tool result: its text parts, else its structured content as
    JSON; other parts (images, audio) are named, not inlined."""
    parts: list[str] = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if isinstance(text, str) else f"[{block.type} omitted]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    return text if len(text) <= MAX_RESULT_CHARS else text[:MAX_RESULT_CHARS] + "\n[cut]"


def _last_line(errlog: IO[str] | None) -> str:
    if errlog is None:
        return ""
    errlog.seek(0)
    lines = [line.strip() for line in errlog.read().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


@dataclass
class ServerTool:
    """One tool of a connected server, as the agent loop calls it."""

    spec: ToolSpec
    server: McpServer
    tool: str

    async def call(self, arguments: dict[str, Any]) -> str:
        return await self.server.call(self.tool, arguments)


@dataclass
class McpServer:
    """A connected server (see ``connect``): its tools, and calls to them."""

    name: str
    client: Client
    config: ServerConfig
    tools: list[ServerTool] = field(default_factory=list)
    call_timeout_s: float = CALL_TIMEOUT_S

    async def call(self, tool: str, arguments: dict[str, Any]) -> str:
        from mcp import MCPError

        try:
            async with asyncio.timeout(self.call_timeout_s):
                result = await self.client.call_tool(tool, arguments)
        except TimeoutError as exc:
            raise ToolError(
                f"mcp:{self.name}/{tool} did not answer within {self.call_timeout_s:g}s"
            ) from exc
        except MCPError as exc:
            raise ToolError(
                f"mcp:{self.name}/{tool} refused the call: {scrubbed(str(exc), self.config)}"
            ) from exc
        text = scrubbed(result_text(result), self.config)
        if result.is_error:
            raise ToolError(text or f"mcp:{self.name}/{tool} failed")
        return text


def _transport(config: ServerConfig, errlog: IO[str] | None) -> Any:
    if isinstance(config, StdioServer):
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=config.command, args=config.args, env=config.env or None, cwd=config.cwd
        )
        assert errlog is not None
        return stdio_client(params, errlog=cast(TextIO, errlog))
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    client = httpx2.AsyncClient(headers=config.headers, timeout=httpx2.Timeout(30.0, read=300.0))
    return streamable_http_client(config.url, http_client=client)


def secrets_of(config: ServerConfig) -> list[str]:
    """The values in a server's ``env`` or ``headers``: often keys, never shown. (Short values,
    such as a port or ``1``, say nothing secret and would scrub ordinary words.)"""
    values = config.env.values() if isinstance(config, StdioServer) else config.headers.values()
    return [v for v in values if len(v) >= 8]


def scrubbed(text: str, config: ServerConfig) -> str:
    """``text`` (a server's own words, e.g. its last stderr line) without its env or header
    values: a server that prints its token when it fails must not put it in a reason that is
    shown, logged and stored."""
    for value in secrets_of(config):
        text = text.replace(value, "[redacted]")
    return text


@asynccontextmanager
async def connect(
    name: str, config: ServerConfig, *, start_timeout_s: float = START_TIMEOUT_S
) -> AsyncIterator[McpServer]:
    """``name``'s server, started (stdio) or reached (HTTP), its tools listed; stopped on exit.
    Raises ``ToolError`` with a one-line reason when it cannot be used.

    The connection lives in a task of its own, and its stop is waited for to its end: the SDK
    stops a server (stdin closed, then SIGTERM, then SIGKILL, each wait bounded) under an anyio
    shield that asyncio's own ``Task.cancel`` pierces — a build cancelled again and again
    (``runs.firmly``) cut that stop short, and then waited for ever for the output of a server
    that was never killed (one blocked in a call)."""
    from agentfirm.router.attempt import finish

    opened: asyncio.Future[McpServer] = asyncio.get_running_loop().create_future()
    closing = asyncio.Event()
    keeper = asyncio.ensure_future(_keep(name, config, start_timeout_s, opened, closing))
    try:
        server = await asyncio.shield(opened)
    except BaseException:
        keeper.cancel()  # on its way up: the SDK unwinds what it started
        with contextlib.suppress(BaseException):
            await finish(keeper)
        if opened.done() and not opened.cancelled():
            opened.exception()  # retrieved: what is raised here is the caller's own stop
        raise
    try:
        yield server
    finally:
        closing.set()
        await finish(keeper)


async def _keep(
    name: str,
    config: ServerConfig,
    start_timeout_s: float,
    opened: asyncio.Future[McpServer],
    closing: asyncio.Event,
) -> None:
    """Hold ``name``'s connection: ``opened`` gets the server (or why it cannot be used), and
    the connection is closed once ``closing`` is set."""
    try:
        async with _connected(name, config, start_timeout_s=start_timeout_s) as server:
            opened.set_result(server)
            await closing.wait()
    except Exception as exc:
        if opened.done():
            raise
        opened.set_exception(exc)
    finally:
        opened.cancel()  # stopped before it was open (a no-op once it has its outcome)


@asynccontextmanager
async def _connected(
    name: str, config: ServerConfig, *, start_timeout_s: float
) -> AsyncIterator[McpServer]:
    from mcp import Client

    where = config.describe()
    stdio = isinstance(config, StdioServer)
    with tempfile.TemporaryFile("w+") if stdio else contextlib.nullcontext() as errlog:
        async with AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(start_timeout_s):
                    client = await stack.enter_async_context(
                        Client(_transport(config, errlog), read_timeout_seconds=start_timeout_s)
                    )
                    listed = await client.list_tools()
            except TimeoutError as exc:
                raise ToolError(
                    f"mcp:{name} ({where}) did not answer within {start_timeout_s:g}s",
                    hint=f"check {name!r} in mcp.json, or raise mcp_start_timeout_s",
                ) from exc
            except OSError as exc:
                raise ToolError(
                    f"mcp:{name} could not start `{where}`: {exc.strerror or exc}",
                    hint=f"check the command of {name!r} in mcp.json",
                ) from exc
            except Exception as exc:  # the SDK's errors vary by transport and protocol era
                said = _last_line(errlog) or str(exc) or type(exc).__name__
                raise ToolError(
                    f"mcp:{name} ({where}) failed on start: {scrubbed(said, config)}",
                    hint=f"check the command, args and env of {name!r} in mcp.json",
                ) from exc
            server = McpServer(name, client, config)
            server.tools = [ServerTool(_spec(name, t), server, t.name) for t in listed.tools]
            yield server


__all__ = [
    "HttpServer",
    "McpServer",
    "ServerTool",
    "StdioServer",
    "connect",
    "model_name",
    "result_text",
]
