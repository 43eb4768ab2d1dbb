"""Which tools exist and which a module gets.

Persona modules name what they may use: ``web_search`` (the provider's own search, where the
model serving the call has one), ``fetch_url``, ``search_attachments``, ``"mcp:NAME"`` or
``"mcp:NAME/*"`` (every tool of a server in ``mcp.json``) and ``"mcp:NAME/TOOL"`` (one tool).
``ToolCatalog.open`` connects the servers a run needs, once for all its modules, and fails before
anything is spent when one cannot be used; ``probe`` is what ``agentfirm tools list`` shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentfirm.domain.tools import ToolSpec
from agentfirm.errors import BadInput
from agentfirm.tools.base import Tool, ToolError
from agentfirm.tools.fetch_url import FetchUrl
from agentfirm.tools.mcp_config import ServerConfig, config_path, load_servers
from agentfirm.tools.mcp_servers import McpServer, connect

if TYPE_CHECKING:
    from agentfirm.settings import Settings

WEB_SEARCH = "web_search"
FETCH_URL = "fetch_url"
SEARCH_ATTACHMENTS = "search_attachments"
BUILTINS = (WEB_SEARCH, FETCH_URL, SEARCH_ATTACHMENTS)
MCP_PREFIX = "mcp:"


@dataclass(frozen=True)
class McpRef:
    server: str
    tool: str | None
    """None: every tool of the server."""


def parse_ref(name: str) -> McpRef | None:
    """``mcp:NAME``, ``mcp:NAME/*`` or ``mcp:NAME/TOOL`` as a reference; None for a builtin."""
    if not name.startswith(MCP_PREFIX):
        return None
    server, _, tool = name[len(MCP_PREFIX) :].partition("/")
    return McpRef(server, None if tool in ("", "*") else tool)


def unknown_tools(names: Iterable[str], servers: Mapping[str, ServerConfig]) -> list[str]:
    """``what — fix`` lines for names that are neither a builtin nor a configured server."""
    problems = []
    for name in names:
        ref = parse_ref(name)
        if ref is None and name not in BUILTINS:
            problems.append(
                f"unknown tool {name!r} — use one of {', '.join(BUILTINS)}, or mcp:NAME for "
                "a server in mcp.json"
            )
        elif ref is not None and ref.server not in servers:
            known = ", ".join(sorted(servers)) or "none are configured"
            problems.append(
                f"tool {name!r} names MCP server {ref.server!r}, which mcp.json does not list "
                f"({known}) — add it to mcp.json (AGENTFIRM_MCP_CONFIG) or drop the tool"
            )
    return problems


def allowed_problem(name: str, servers: Mapping[str, ServerConfig]) -> str | None:
    """Why ``name``, an ``--allow-tool`` value, names no tool that could ask for consent (what,
    where, how to fix), or None. It must name tools of a server in ``mcp.json``: one as
    ``mcp:SERVER/TOOL`` or as the model sees it, ``SERVER__TOOL``, or all of them as
    ``mcp:SERVER/*`` (matched by ``domain.tools.tool_allowed``); a builtin changes nothing and
    never asks, so naming one is harmless. Whether the server has that tool is known only once
    it runs (``agentfirm tools list``)."""
    if name in BUILTINS:
        return None
    known = ", ".join(sorted(servers)) or "none: mcp.json lists no server"
    fix = (
        f"name one tool as mcp:SERVER/TOOL, or all of a server's as mcp:SERVER/* (servers: "
        f"{known}; `agentfirm tools list` shows them)"
    )
    ref = parse_ref(name)
    if ref is None:
        server, sep, tool = name.partition("__")
        if sep and tool and server in servers:
            return None
        return f"--allow-tool {name!r}: no such tool — {fix}"
    if ref.server not in servers:
        return f"--allow-tool {name!r}: mcp.json lists no server {ref.server!r} — {fix}"
    if ref.tool is None and not name.endswith("/*"):
        return f"--allow-tool {name!r} names a whole server, not a tool — {fix}"
    return None


def check_allowed(names: Iterable[str], servers: Mapping[str, ServerConfig]) -> None:
    """Raise ``BadInput`` (one line, the first bad name) unless every ``--allow-tool`` value
    names a tool (``allowed_problem``)."""
    for name in names:
        problem = allowed_problem(name, servers)
        if problem is not None:
            raise BadInput(problem)


@dataclass
class ModuleTools:
    """What one module may use: tools by the name the model sees, and native web search."""

    tools: dict[str, Tool] = field(default_factory=dict)
    web_search: bool = False

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(tool.spec for tool in self.tools.values())

    def __bool__(self) -> bool:
        return bool(self.tools) or self.web_search


@dataclass
class Toolset:
    """The tools of one run: builtins and the connected servers. ``search`` is the MCP tool
    (``mcp:NAME/TOOL``) offered with ``web_search`` besides the provider's own search."""

    builtins: dict[str, Tool]
    servers: dict[str, McpServer]
    search: str | None = None

    def for_module(self, names: Sequence[str]) -> ModuleTools:
        chosen = ModuleTools()
        for name in names:
            if name == WEB_SEARCH:
                chosen.web_search = True
                if self.search is not None:
                    chosen.tools.update(self.for_module([self.search]).tools)
                continue
            ref = parse_ref(name)
            if ref is None:
                if name in self.builtins:
                    chosen.tools[name] = self.builtins[name]
            elif ref.server in self.servers:
                for tool in self.servers[ref.server].tools:
                    if ref.tool is None or ref.tool == tool.tool:
                        chosen.tools[tool.spec.name] = tool
        return chosen


@dataclass(frozen=True)
class ToolRow:
    """One line of ``agentfirm tools list``."""

    name: str
    source: str
    origin: str
    side_effects: bool
    ok: bool
    reason: str = ""
    description: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "origin": self.origin,
            "side_effects": self.side_effects,
            "ok": self.ok,
            "reason": self.reason,
            "description": self.description,
        }


class ToolCatalog:
    """Every tool this installation can offer: the builtins and the servers of ``mcp.json``."""

    def __init__(
        self,
        servers: Mapping[str, ServerConfig] | None = None,
        *,
        fetch: FetchUrl | None = None,
        start_timeout_s: float = 20.0,
        search: str | None = None,
    ) -> None:
        """``search``: an MCP tool (``mcp:NAME/TOOL``) that modules given ``web_search`` also
        get, for models that cannot search themselves (the ``web_search_tool`` setting)."""
        self.servers = dict(servers or {})
        self._fetch = fetch or FetchUrl()
        self._start_timeout_s = start_timeout_s
        self.search = search

    def _expanded(self, names: Iterable[str]) -> list[str]:
        listed = list(names)
        if self.search is not None and WEB_SEARCH in listed:
            listed.append(self.search)
        return listed

    def problems(self, names: Iterable[str]) -> list[str]:
        problems = unknown_tools(self._expanded(names), self.servers)
        if self.search is not None and (parse_ref(self.search) or McpRef("", None)).tool is None:
            problems.append(
                f"web_search_tool {self.search!r} names no tool — use mcp:NAME/TOOL, one tool "
                "of a server in mcp.json"
            )
        return problems

    @asynccontextmanager
    async def open(
        self,
        names: Iterable[str],
        extra: Mapping[str, Tool] | None = None,
        *,
        finishing: Callable[[str], AbstractContextManager[None]] | None = None,
    ) -> AsyncIterator[Toolset]:
        """The tools ``names`` need, servers connected until the block ends. ``extra`` adds
        builtins that belong to one task (``search_attachments``). Raises ``ToolError`` naming
        the first server that cannot be used: nothing has been spent yet. The servers' stop,
        which is waited for to its end, is done inside ``finishing`` (``InFlight.finishing``:
        a stop says what it waits for)."""
        listed = self._expanded(names)
        wanted = sorted({ref.server for n in listed if (ref := parse_ref(n)) is not None})
        async with AsyncExitStack() as stack:
            servers = {}
            for name in wanted:
                if name not in self.servers:
                    raise ToolError(unknown_tools([f"mcp:{name}"], self.servers)[0])
                servers[name] = await stack.enter_async_context(
                    connect(name, self.servers[name], start_timeout_s=self._start_timeout_s)
                )
            try:
                yield Toolset({FETCH_URL: self._fetch, **(extra or {})}, servers, self.search)
            finally:
                if servers:
                    named = ", ".join(f"mcp:{name}" for name in servers)
                    with finishing(f"{named} to stop") if finishing else nullcontext():
                        await stack.aclose()

    async def unavailable(self, names: Iterable[str]) -> list[str]:
        """One line per tool of ``names`` that cannot be used: a name nothing provides, or a
        server that does not start or answer (each started, asked for its tools and stopped
        again). Empty: a build needing ``names`` will get them."""
        problems, _changing = await self.inspect(names)
        return problems

    async def inspect(
        self, names: Iterable[str]
    ) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
        """``unavailable``, and the tools that may change things of each server ``names``
        need (as ``(model name, origin)``), learnt as it is started: said with the plan."""
        listed = self._expanded(names)
        wanted = sorted(
            {ref.server for n in listed if (ref := parse_ref(n)) is not None} & set(self.servers)
        )

        async def check(name: str) -> tuple[str | None, list[tuple[str, str]]]:
            try:
                async with connect(
                    name, self.servers[name], start_timeout_s=self._start_timeout_s
                ) as server:
                    return None, [
                        (tool.spec.name, tool.spec.origin)
                        for tool in server.tools
                        if tool.spec.side_effects
                    ]
            except ToolError as err:
                return str(err), []

        found = await asyncio.gather(*(check(name) for name in wanted))
        problems = self.problems(names) + [reason for reason, _ in found if reason is not None]
        return problems, {name: tools for name, (_, tools) in zip(wanted, found, strict=True)}

    async def probe(self) -> list[ToolRow]:
        """Every tool with where it comes from, each server started and asked for its tools; a
        server that cannot be used is one row with the reason."""
        rows = [
            ToolRow(
                WEB_SEARCH,
                "provider",
                "the provider's native search (Anthropic, Gemini, OpenAI's search models)"
                + (f", and {self.search}" if self.search else ""),
                False,
                True,
                description="offered where the model serving the call can search",
            ),
            ToolRow(
                FETCH_URL,
                "builtin",
                "builtin",
                False,
                True,
                description=self._fetch.spec.description,
            ),
            ToolRow(
                SEARCH_ATTACHMENTS,
                "builtin",
                "builtin",
                False,
                True,
                description="searches the documents attached to the task",
            ),
        ]
        probes = [self._probe(name, config) for name, config in sorted(self.servers.items())]
        for found in await asyncio.gather(*probes):
            rows += found
        return rows

    async def _probe(self, name: str, config: ServerConfig) -> list[ToolRow]:
        """One server's rows: its tools, or one row saying why it cannot be used. Connected
        and closed in this one task (the SDK's cancel scopes require it)."""
        try:
            async with connect(name, config, start_timeout_s=self._start_timeout_s) as server:
                return [
                    ToolRow(
                        f"mcp:{name}/{tool.tool}",
                        "mcp",
                        config.describe(),
                        tool.spec.side_effects,
                        True,
                        description=tool.spec.description.split("\n", 1)[0][:120],
                    )
                    for tool in server.tools
                ]
        except ToolError as err:
            return [ToolRow(f"mcp:{name}", "mcp", config.describe(), False, False, str(err))]


def servers_from_settings(settings: Settings) -> dict[str, ServerConfig]:
    """The servers of ``mcp.json`` (``mcp_config``). Raises ``ConfigError`` when it is invalid."""
    return load_servers(config_path(settings.mcp_config, settings.paths.config_dir))


def catalog_from_settings(settings: Settings) -> ToolCatalog:
    """The catalog the settings describe: the servers of ``mcp.json`` (``mcp_config``) and
    ``fetch_url`` with its address rule. Raises ``ConfigError`` when ``mcp.json`` is invalid."""
    return ToolCatalog(
        servers_from_settings(settings),
        fetch=FetchUrl(allow_private=settings.fetch_allow_private),
        start_timeout_s=settings.mcp_start_timeout_s,
        search=settings.web_search_tool,
    )
