"""The words of tool use that the router, the tools and the Build Master's agent loop share.

The model is shown ``ToolSpec``s and answers with ``ToolCall``s; the loop runs each call and sends
a ``ToolResult`` back in the next turn. The router turns these into each provider's native tool
protocol and never runs a tool; ``agentfirm.tools`` runs them and never calls a model.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentfirm.errors import ConfigError

TOOL_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
"""A name every provider's tool protocol accepts (Anthropic, OpenAI and Gemini agree on this)."""

ToolSource = Literal["builtin", "mcp", "provider"]


@dataclass(frozen=True)
class ToolSpec:
    """What the model is shown: a name, what it does, and the JSON schema of its arguments."""

    name: str
    description: str
    input_schema: dict[str, Any] = field(hash=False)
    source: ToolSource = "builtin"
    origin: str = ""
    """Where it comes from, for people: ``builtin``, ``mcp:fetch``, ``anthropic web search``."""
    side_effects: bool = False
    """It may change something outside agentfirm, so a human consents before each call."""


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for. ``arguments`` is ``None`` when its JSON did not parse;
    ``raw_arguments`` keeps what the model sent, so the loop can ask for a repair."""

    id: str
    name: str
    arguments: dict[str, Any] | None = field(hash=False)
    raw_arguments: str = ""
    signature: str = ""
    """An opaque token the provider wants back with this call in the next turn (Gemini's thought
    signature, base64; the reasoning items of an OpenAI reasoning model, JSON); empty for the
    others."""


@dataclass(frozen=True)
class ToolResult:
    """The answer to one ``ToolCall`` (matched by ``call_id``): text the model reads next turn."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ToolRequest:
    """A call a human must allow before it runs: the tool may change something outside
    agentfirm. What every front end shows (and ``--allow-tool`` matches)."""

    call_id: str
    tool: str
    """The name the model used (``git__commit``)."""
    origin: str
    """Where it comes from (``mcp:git/commit``)."""
    arguments: str
    """The call's arguments as JSON, redacted."""

    def named_in(self, allowed: Collection[str]) -> bool:
        """Whether ``allowed`` (``--allow-tool`` values) names this tool (``tool_allowed``)."""
        return tool_allowed(allowed, self.tool, self.origin)


def tool_allowed(allowed: Collection[str], tool: object, origin: object) -> bool:
    """Whether ``--allow-tool`` values name a tool asking for consent: by the name the model
    used (``git__commit``), by where it comes from (``mcp:git/commit``), or by its whole MCP
    server (``mcp:git/*``). Every decider answering a tool question under ``--yes`` asks this
    (in-process, the daemon's policy, a client answering the daemon), so they never differ.
    ``tool`` and ``origin`` may come from an approval's payload, unchecked."""
    if tool in allowed or origin in allowed:
        return True
    if not isinstance(origin, str) or not origin.startswith("mcp:"):
        return False
    server, sep, _tool = origin.removeprefix("mcp:").partition("/")
    return bool(sep) and f"mcp:{server}/*" in allowed


def stopped_for_tools(
    problems: Sequence[str], task_id: str, *, before: str, then: str
) -> ConfigError:
    """A task stopped ``before`` a step (``planning``, ``its modules ran``…) because tools it
    needs cannot be used: one line per problem, each saying how to go on once it is fixed
    (``agentfirm THEN TASK``). The same words wherever the task stopped and whoever hosts it."""
    after = f"; task {task_id} stopped before {before}: fix it, then agentfirm {then} {task_id}"
    return ConfigError([problem + after for problem in problems])


ConsentWay = Literal["denied", "asks", "allowed"]
ChangingTools = Mapping[str, Sequence[tuple[str, str]]]
"""MCP server → its tools that may change things, each as (the name the model sees, origin)."""


@dataclass(frozen=True)
class ToolConsent:
    """A tool a plan's modules may call that may change things, and what happens when they do,
    said with the plan before anyone approves it: ``denied`` (``--yes`` without ``--allow-tool``
    naming it: the modules run without it), ``asks`` (a person is asked before each call) or
    ``allowed`` (``--allow-tool``)."""

    origin: str
    modules: tuple[str, ...]
    way: ConsentWay

    def to_json(self) -> dict[str, Any]:
        return {"tool": self.origin, "modules": list(self.modules), "consent": self.way}


def tool_consents(
    modules: Iterable[tuple[str, Sequence[str]]],
    changing: ChangingTools,
    *,
    decides_alone: bool,
    allowed: Collection[str] = (),
) -> list[ToolConsent]:
    """The tools that may change things among those ``modules`` (id, tool names) may use, in
    the order first named. ``decides_alone``: nobody is asked (``--yes``), so each is denied
    unless ``allowed`` names it (``tool_allowed``)."""
    users: dict[tuple[str, str], list[str]] = {}
    for module_id, names in modules:
        for name in names:
            if not name.startswith("mcp:"):
                continue  # builtins change nothing
            server, _, tool = name.removeprefix("mcp:").partition("/")
            for model_name, origin in changing.get(server, ()):
                if tool in ("", "*") or origin == f"mcp:{server}/{tool}":
                    named = users.setdefault((model_name, origin), [])
                    if module_id not in named:
                        named.append(module_id)
    consents = []
    for (model_name, origin), used_by in users.items():
        way: ConsentWay = "asks"
        if decides_alone:
            way = "allowed" if tool_allowed(allowed, model_name, origin) else "denied"
        consents.append(ToolConsent(origin, tuple(used_by), way))
    return consents


def consent_line(entry: Mapping[str, Any]) -> str:
    """The words for one entry of a plan question's ``tools`` (``ToolConsent.to_json``), the
    same in the terminal, the TUI and Slack."""
    tool = str(entry.get("tool") or "?")
    used_by = ", ".join(str(m) for m in entry.get("modules") or ()) or "?"
    way = entry.get("consent")
    if way == "denied":
        return (
            f"{tool} (used by {used_by}) may change things and will be denied: --yes without "
            f"--allow-tool {tool}; those modules go on without it"
        )
    if way == "allowed":
        return f"{tool} (used by {used_by}) may change things: allowed by --allow-tool"
    return f"{tool} (used by {used_by}) may change things: you are asked before each call"


def plan_tool_lines(payload: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """A plan question's ``tools`` as lines (``consent_line``), each with whether the tool will
    be denied: what every front end shows under the plan."""
    entries = [e for e in payload.get("tools") or () if isinstance(e, Mapping)]
    return [(consent_line(e), e.get("consent") == "denied") for e in entries]
