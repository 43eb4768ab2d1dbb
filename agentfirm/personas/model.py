"""The persona model: the pydantic schema of a persona file and the checks on its module graph.

A persona is data: a YAML file naming the modules (a DAG of scoped briefs with tiers and output
types) and the quality checklist for one kind of professional work. ``persona_yaml`` reads files
into these models; ``personas`` collects them into a library.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from agentfirm.domain.graph import ModuleLike, waves
from agentfirm.domain.graph import graph_problems as domain_graph_problems
from agentfirm.domain.models import ModuleSpec, Plan, Tier
from agentfirm.outputs.types import KNOWN_OUTPUT_TYPES

PROBLEM_ERROR = "persona_problem"
"""pydantic error type of a ``problem_error``: its context carries ``what`` and ``fix``."""
GRAPH_ERROR = "persona_graph"
"""pydantic error type of a graph problem: its context carries ``problems``."""


@dataclass(frozen=True)
class Problem:
    """One problem in a persona: where (a path into the data), what is wrong, how to fix it."""

    loc: tuple[str | int, ...]
    what: str
    fix: str


ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
"""What persona and module ids look like (they become file names, keys and branch names)."""
_ID = re.compile(ID_PATTERN)


def problem_error(what: str, fix: str) -> PydanticCustomError:
    return PydanticCustomError(PROBLEM_ERROR, "{what}", {"what": what, "fix": fix})


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise problem_error(
            f"id '{value}' is not a valid id",
            "use lower-case letters, digits, '_' or '-', starting with a letter or digit",
        )
    return value


TOOL_PATTERN = (
    r"^(web_search|fetch_url|search_attachments|mcp:[A-Za-z0-9_-]{1,40}(/(\*|[A-Za-z0-9_.-]+))?)$"
)
"""A tool a module may name (the MCP server names are those of ``mcp.json``)."""
_TOOL = re.compile(TOOL_PATTERN)
MAX_TURNS_LIMIT = 50

Text = Annotated[str, Field(min_length=1)]
# For editors' autocompletion in persona.schema.json; validation is ``_known_output_type``.
_OUTPUT_TYPE_NAMES: list[JsonValue] = [*sorted(KNOWN_OUTPUT_TYPES)]
Id = Annotated[str, AfterValidator(_check_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ModuleTemplate(_Strict):
    """One module of a persona: the brief one sub-agent gets, its tier and its output type."""

    id: Id = Field(
        description="Unique in this persona; other modules name it in depends_on.",
        json_schema_extra={"pattern": ID_PATTERN},
    )
    title: Text = Field(description="A short title, shown in plans and the deliverable.")
    brief: Text = Field(
        description="What the sub-agent must produce: scope, method, what to cite. It sees only "
        "this brief, the request, the assumptions and its upstream modules' outputs."
    )
    tier: Tier = Field(
        description="Model tier: reasoning (judgement, synthesis), execution (research, "
        "drafting) or utility (cheap, mechanical work)."
    )
    depends_on: list[str] = Field(
        default_factory=list,
        description="Ids of the modules whose outputs this one needs. Modules whose "
        "dependencies are done run in parallel.",
    )
    output_type: str = Field(
        description="The JSON schema the sub-agent fills (see agentfirm/outputs/types.py).",
        json_schema_extra={"enum": _OUTPUT_TYPE_NAMES},
    )
    tools: list[str] = Field(
        default_factory=list,
        description="Tools the sub-agent may call in its loop: web_search (the provider's own "
        "search), fetch_url, search_attachments, 'mcp:NAME' or 'mcp:NAME/*' (every tool of a "
        "server in mcp.json), 'mcp:NAME/TOOL' (one tool).",
        json_schema_extra={"items": {"pattern": TOOL_PATTERN}},
    )
    max_turns: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TURNS_LIMIT,
        description="Model turns the sub-agent may take with its tools before it must answer "
        "(default: the max_turns setting).",
    )
    covers: list[int] = Field(
        default_factory=list,
        description="Numbers (from 1) of the quality_checklist items this module's work "
        "satisfies. A plan that drops every module covering an item must say why, and --yes "
        "refuses it.",
        json_schema_extra={"items": {"minimum": 1}},
    )

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, tools: list[str]) -> list[str]:
        for name in tools:
            if not _TOOL.match(name):
                raise problem_error(
                    f"unknown tool '{name}'",
                    "use web_search, fetch_url, search_attachments, 'mcp:NAME', 'mcp:NAME/*' or "
                    "'mcp:NAME/TOOL'",
                )
        return list(dict.fromkeys(tools))

    @field_validator("output_type")
    @classmethod
    def _known_output_type(cls, value: str) -> str:
        if value not in KNOWN_OUTPUT_TYPES:
            raise problem_error(
                f"unknown output type '{value}'",
                "use one of: " + ", ".join(sorted(KNOWN_OUTPUT_TYPES)),
            )
        return value


class Persona(_Strict):
    """A validated persona template: unique module ids, known dependencies, no cycles."""

    id: Id = Field(
        description="Optional in a file: it must equal the file name without '.yaml'.",
        json_schema_extra={"pattern": ID_PATTERN},
    )
    name: Text = Field(description="The persona's display name.")
    description: Text = Field(
        description="What the work is and what it delivers; the LLM classifier reads it."
    )
    classification_keywords: list[str] = Field(
        default_factory=list,
        description="Words and phrases that point a request to this persona (whole words, case "
        "and plurals ignored; a phrase scores one point per word).",
    )
    modules: list[ModuleTemplate] = Field(
        min_length=1, description="The work as a dependency graph of modules."
    )
    quality_checklist: list[Text] = Field(
        min_length=1,
        description="Checks the deliverable is judged against, pass or fail with evidence.",
    )

    @field_validator("classification_keywords")
    @classmethod
    def _normalise_keywords(cls, keywords: list[str]) -> list[str]:
        normalised = [" ".join(k.lower().split()) for k in keywords]
        if "" in normalised:
            raise problem_error("a classification keyword is empty", "remove the empty entry")
        return list(dict.fromkeys(normalised))

    @model_validator(mode="after")
    def _valid_graph(self) -> Persona:
        size = len(self.quality_checklist)
        for module in self.modules:
            wrong = [n for n in module.covers if not 1 <= n <= size]
            if wrong:
                raise problem_error(
                    f"module '{module.id}' covers checklist item {wrong[0]}, but the "
                    f"quality_checklist has {size} items",
                    f"number its covers from 1 to {size}",
                )
        problems = graph_problems(self.modules)
        if problems:
            summary = "; ".join(p.what for p in problems)
            raise PydanticCustomError(
                GRAPH_ERROR, "{summary}", {"summary": summary, "problems": problems}
            )
        return self

    def waves(self) -> list[list[str]]:
        """Module ids grouped by dependency level; each wave in file order."""
        return module_waves(self.modules)

    def to_plan(self) -> Plan:
        """The template as a ``Plan`` (modules in file order, waves filled in)."""
        modules = [ModuleSpec(**m.model_dump(exclude={"covers"})) for m in self.modules]
        return Plan(modules=modules, waves=self.waves())

    def coverage(self) -> dict[int, list[str]]:
        """Each checklist item some module covers (its number, from 1) → those modules' ids."""
        covering: dict[int, list[str]] = {}
        for module in self.modules:
            for number in module.covers:
                covering.setdefault(number, []).append(module.id)
        return dict(sorted(covering.items()))


# ---------------------------------------------------------------------------- module graphs


def graph_problems(modules: Sequence[ModuleLike]) -> list[Problem]:
    """The graph's problems (``domain.graph``) located in a persona's data."""
    return [
        Problem(
            ("modules", p.index, "id")
            if p.dependency is None
            else ("modules", p.index, "depends_on", p.dependency),
            p.what,
            p.fix,
        )
        for p in domain_graph_problems(modules)
    ]


def check_modules(modules: Sequence[ModuleSpec]) -> list[str]:
    """Problems of a module list (e.g. an LLM-adapted plan) as ``what — fix`` lines, empty if it is
    valid: unique ids, known dependencies, no cycles, known output types."""
    problems = [f"{p.what} — {p.fix}" for p in graph_problems(modules)]
    problems += [
        f"module '{m.id}' has unknown output type '{m.output_type}' — use one of: "
        + ", ".join(sorted(KNOWN_OUTPUT_TYPES))
        for m in modules
        if m.output_type not in KNOWN_OUTPUT_TYPES
    ]
    return problems


def module_waves(modules: Sequence[ModuleLike]) -> list[list[str]]:
    """Module ids grouped by dependency level (wave 1 has no dependencies); each wave keeps the
    modules' order. Raises ``ValueError`` if the graph is invalid (see ``check_modules``)."""
    problems = graph_problems(modules)
    if problems:
        raise ValueError("; ".join(p.what for p in problems))
    return waves(modules)
