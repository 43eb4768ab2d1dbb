"""Persona templates: load and validate persona YAML, and classify requests against them.

A persona is data: a YAML file naming the modules (a DAG of scoped briefs with tiers and output
types) and the quality checklist for one kind of professional work. Shipped personas live in the
``agentfirm.persona_templates`` package (the repository's ``personas/`` directory); a user's files
with the same id override them. Every problem in a file is reported as ``FILE:LINE: what — fix``.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import structlog
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from agentfirm.domain import TIERS, ModuleSpec, Plan, Tier
from agentfirm.errors import AgentfirmError, NotFound, PersonaError
from agentfirm.output_types import KNOWN_OUTPUT_TYPES

log = structlog.get_logger(__name__)

SHIPPED_PACKAGE = "agentfirm.persona_templates"

# A clear keyword winner scores at least MIN_SCORE, at least MIN_LEAD points more than the
# runner-up, and at least MIN_RATIO times the runner-up's score. Anything closer is left to the
# LLM stage or the user: a wrong persona costs a whole plan, asking costs one question.
MIN_SCORE = 1.0
MIN_LEAD = 1.0
MIN_RATIO = 2.0

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PROBLEM = "persona_problem"
_GRAPH = "persona_graph"


@dataclass(frozen=True)
class _Problem:
    loc: tuple[str | int, ...]
    what: str
    fix: str


def _problem_error(what: str, fix: str) -> PydanticCustomError:
    return PydanticCustomError(_PROBLEM, "{what}", {"what": what, "fix": fix})


def _check_id(value: str) -> str:
    if not _ID.match(value):
        raise _problem_error(
            f"id '{value}' is not a valid id",
            "use lower-case letters, digits, '_' or '-', starting with a letter or digit",
        )
    return value


Text = Annotated[str, Field(min_length=1)]
Id = Annotated[str, AfterValidator(_check_id)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class ModuleTemplate(_Strict):
    """One module of a persona: the brief one sub-agent gets, its tier and its output type."""

    id: Id
    title: Text
    brief: Text
    tier: Tier
    depends_on: list[str] = Field(default_factory=list)
    output_type: str

    @field_validator("output_type")
    @classmethod
    def _known_output_type(cls, value: str) -> str:
        if value not in KNOWN_OUTPUT_TYPES:
            raise _problem_error(
                f"unknown output type '{value}'",
                "use one of: " + ", ".join(sorted(KNOWN_OUTPUT_TYPES)),
            )
        return value


class Persona(_Strict):
    """A validated persona template: unique module ids, known dependencies, no cycles."""

    id: Id
    name: Text
    description: Text
    classification_keywords: list[str] = Field(default_factory=list)
    modules: list[ModuleTemplate] = Field(min_length=1)
    quality_checklist: list[Text] = Field(min_length=1)

    @field_validator("classification_keywords")
    @classmethod
    def _normalise_keywords(cls, keywords: list[str]) -> list[str]:
        normalised = [" ".join(k.lower().split()) for k in keywords]
        if "" in normalised:
            raise _problem_error("a classification keyword is empty", "remove the empty entry")
        return list(dict.fromkeys(normalised))

    @model_validator(mode="after")
    def _valid_graph(self) -> Persona:
        problems = _graph_problems(self.modules)
        if problems:
            summary = "; ".join(p.what for p in problems)
            raise PydanticCustomError(
                _GRAPH, "{summary}", {"summary": summary, "problems": problems}
            )
        return self

    def waves(self) -> list[list[str]]:
        """Module ids grouped by dependency level; each wave in file order."""
        return module_waves(self.modules)

    def to_plan(self) -> Plan:
        """The template as a ``Plan`` (modules in file order, waves filled in)."""
        modules = [ModuleSpec(**m.model_dump()) for m in self.modules]
        return Plan(modules=modules, waves=self.waves())


# ---------------------------------------------------------------------------- module graphs


class ModuleLike(Protocol):
    """What graph checks need of a module: ``ModuleTemplate`` and ``domain.ModuleSpec`` both fit."""

    @property
    def id(self) -> str: ...

    @property
    def depends_on(self) -> Sequence[str]: ...


def _graph_problems(modules: Sequence[ModuleLike]) -> list[_Problem]:
    problems: list[_Problem] = []
    first_index: dict[str, int] = {}
    for index, module in enumerate(modules):
        if module.id in first_index:
            problems.append(
                _Problem(
                    ("modules", index, "id"),
                    f"module id '{module.id}' is used twice",
                    "rename this module: ids must be unique",
                )
            )
        else:
            first_index[module.id] = index
    for index, module in enumerate(modules):
        for position, dep in enumerate(module.depends_on):
            if dep == module.id:
                what = f"module '{dep}' depends on itself"
                fix = f"remove '{dep}' from its depends_on"
            elif dep not in first_index:
                others = [m for m in first_index if m != module.id]
                what = f"module '{module.id}' depends on unknown module '{dep}'"
                fix = "use one of: " + (", ".join(others) or "(no other modules)")
            else:
                continue
            problems.append(_Problem(("modules", index, "depends_on", position), what, fix))
    cycle = _find_cycle(modules, set(first_index))
    if cycle:
        # graphlib lists each node before the node that depends on it; reversed, each depends on
        # the next, which is how people read "a depends on b".
        chain = list(reversed(cycle))
        start = first_index[chain[0]]
        position = list(modules[start].depends_on).index(chain[1])
        problems.append(
            _Problem(
                ("modules", start, "depends_on", position),
                "modules form a dependency cycle: "
                + " → ".join(chain)
                + " (each depends on the next)",
                "remove one of these dependencies",
            )
        )
    return problems


def _find_cycle(modules: Sequence[ModuleLike], known: set[str]) -> list[str]:
    graph: dict[str, list[str]] = {}
    for m in modules:
        # A duplicate id is reported on its own; its dependencies would only blur the cycle.
        graph.setdefault(m.id, [d for d in m.depends_on if d in known and d != m.id])
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return list(err.args[1])
    return []


def check_modules(modules: Sequence[ModuleSpec]) -> list[str]:
    """Problems of a module list (e.g. an LLM-adapted plan) as ``what — fix`` lines, empty if it is
    valid: unique ids, known dependencies, no cycles, known output types."""
    problems = [f"{p.what} — {p.fix}" for p in _graph_problems(modules)]
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
    problems = _graph_problems(modules)
    if problems:
        raise ValueError("; ".join(p.what for p in problems))
    order = {m.id: i for i, m in enumerate(modules)}
    sorter = graphlib.TopologicalSorter({m.id: list(m.depends_on) for m in modules})
    sorter.prepare()
    waves: list[list[str]] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=order.__getitem__)
        waves.append(ready)
        sorter.done(*ready)
    return waves


# ---------------------------------------------------------------------------- loading files


def load_persona_file(path: Path) -> Persona:
    """Load and validate one persona file; its id is the file name without extension.

    Raises ``PersonaError`` whose ``problems`` are every problem found, each one line
    ``FILE:LINE: what — how to fix`` (a YAML syntax error stops at the first)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PersonaError(
            [f"{path}:1: cannot read the file ({err}) — check path and encoding"]
        ) from err
    return parse_persona(text, source=str(path))


def parse_persona(text: str, *, source: str) -> Persona:
    """Validate persona YAML ``text``; ``source`` is the file name used for the id and messages."""
    data, root = _parse_yaml(text, source)
    persona_id = Path(source).stem
    problems = _duplicate_keys(root)
    if not isinstance(data, dict):
        problems.append(
            _Problem(
                (),
                "the file is not a mapping of persona fields",
                "write 'key: value' lines for: " + ", ".join(Persona.model_fields),
            )
        )
    else:
        declared = data.get("id", persona_id)
        if declared != persona_id:
            problems.append(
                _Problem(
                    ("id",),
                    f"id '{declared}' does not match the file name '{Path(source).name}'",
                    f"remove the id line or rename the file to {declared}.yaml",
                )
            )
        try:
            persona = Persona.model_validate({**data, "id": persona_id})
        except ValidationError as err:
            problems += _from_validation(err, data)
        else:
            if not problems:
                return persona
    lines = sorted((_line_of(root, p.loc), p.what, p.fix) for p in problems)
    raise PersonaError([f"{source}:{line}: {what} — {fix}" for line, what, fix in lines])


def _parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The data and its node tree (for line numbers), from one parse."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PersonaError(
            [
                f"{source}:{line}: invalid YAML at column {column}: {err.problem or err.context} — "
                "check the indentation, quoting and ':' on this line and the one above"
            ]
        ) from err
    except yaml.YAMLError as err:
        raise PersonaError([f"{source}:1: invalid YAML: {err} — fix the YAML syntax"]) from err
    finally:
        loader.dispose()


def _duplicate_keys(root: yaml.Node | None) -> list[_Problem]:
    problems: list[_Problem] = []
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())] if root else []
    while stack:
        node, loc = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    problems.append(
                        _Problem(
                            (*loc, name),  # points at the last one, the one YAML keeps
                            f"key '{name}' appears twice (first on line {seen[name]})",
                            "keep one: YAML silently uses only the last",
                        )
                    )
                seen[name] = key.start_mark.line + 1
                stack.append((value, (*loc, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return problems


def _line_of(root: yaml.Node | None, loc: Sequence[str | int]) -> int:
    """The 1-based line of the node at ``loc`` (of a mapping key: the key's line), or of its
    deepest existing ancestor when the node is missing."""
    if root is None:
        return 1
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            keys = [(k, v) for k, v in node.value if str(k.value) == str(part)]
            if not keys:
                break
            key, node = keys[-1]
            line = key.start_mark.line + 1
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


# How to fix a value of the wrong type, by pydantic error type.
_TYPE_FIXES = {
    "string_type": (
        "is not text",
        "write it as text; quote it if YAML reads it as a number or yes/no",
    ),
    "list_type": ("is not a list", "write a YAML list: one '- item' per line, or [a, b]"),
    "dict_type": ("is not a mapping", "write 'key: value' lines"),
    "model_type": ("is not a mapping", "write 'key: value' lines"),
    "string_too_short": ("is empty", "write some text"),
    "too_short": ("is empty", "add at least one item"),
    "invalid_key": ("is not a field name", "use text keys: the field names"),
}


def _from_validation(err: ValidationError, data: dict[str, Any]) -> list[_Problem]:
    problems: list[_Problem] = []
    for detail in err.errors():
        ctx = detail.get("ctx", {})
        if detail["type"] == _GRAPH:
            problems += ctx["problems"]
        else:
            problems.append(_describe(detail, ctx, data))
    if not any(d["type"] == _GRAPH for d in err.errors()):
        # Field errors stop pydantic before the graph check; run it on whatever modules parsed.
        problems += _graph_problems(_raw_modules(data))
    return problems


def _describe(detail: ErrorDetails, ctx: dict[str, Any], data: dict[str, Any]) -> _Problem:
    loc = tuple(detail["loc"])
    subject, field = _subject(loc, data)
    kind = detail["type"]
    if kind == _PROBLEM:
        return _Problem(loc, f"{subject}: {ctx['what']}", ctx["fix"])
    if kind == "missing":
        return _Problem(loc, f"{subject} has no '{field}'", f"add a '{field}:' line")
    if kind == "extra_forbidden":
        model = Persona if len(loc) == 1 else ModuleTemplate
        return _Problem(loc, f"{subject} has unknown field '{field}'", _fields_fix(model))
    if kind == "literal_error" and loc[-1] == "tier":
        return _Problem(
            loc,
            f"{subject} has unknown tier '{detail['input']}'",
            "use one of: " + ", ".join(TIERS),
        )
    reason, fix = _TYPE_FIXES.get(
        kind, (detail["msg"], "see `agentfirm personas show` for examples")
    )
    return _Problem(loc, f"{subject}: '{field}' {reason}", fix)


def _subject(loc: tuple[str | int, ...], data: dict[str, Any]) -> tuple[str, str]:
    """Who the problem is about ("persona", "module 'x'") and the field path within it."""
    if len(loc) >= 3 and loc[0] == "modules" and isinstance(loc[1], int):
        modules = data.get("modules")
        entry = modules[loc[1]] if isinstance(modules, list) and loc[1] < len(modules) else None
        mid = entry.get("id") if isinstance(entry, dict) else None
        subject = f"module '{mid}'" if isinstance(mid, str) else f"module {loc[1] + 1}"
        return subject, _path(loc[2:])
    return "persona", _path(loc)


def _path(parts: Sequence[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


def _fields_fix(model: type[BaseModel]) -> str:
    return "use only: " + ", ".join(model.model_fields)


@dataclass(frozen=True)
class _RawModule:
    id: str
    depends_on: Sequence[str]


def _raw_modules(data: dict[str, Any]) -> list[_RawModule]:
    """The modules' ids and dependencies from unvalidated data; [] unless all are well-formed."""
    modules = data.get("modules")
    if not isinstance(modules, list):
        return []
    raw: list[_RawModule] = []
    for entry in modules:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            return []
        deps = entry.get("depends_on", [])
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            return []
        raw.append(_RawModule(entry["id"], deps))
    return raw


# ---------------------------------------------------------------------------- library


@dataclass(frozen=True)
class Classification:
    """Which persona fits a request and why. ``matched`` lists, per persona with any match, the
    keywords found; ``scores`` has every persona. ``persona`` is None when the stage is ``ask``."""

    persona: str | None
    stage: Literal["keywords", "llm", "ask"]
    matched: dict[str, list[str]]
    scores: dict[str, float]


_WORD = re.compile(r"[^\W_]+")


def _singular(word: str) -> str:
    """A crude singular, applied to request and keywords alike so 'claims' meets 'claim'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(text: str) -> tuple[str, ...]:
    return tuple(_singular(w) for w in _WORD.findall(text.casefold()))


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


class PersonaLibrary:
    """The personas available to classify and plan with, by id."""

    def __init__(self, personas: Iterable[Persona]) -> None:
        """Later personas with the same id replace earlier ones."""
        self._personas = {p.id: p for p in personas}
        self._keywords = {
            p.id: [(k, _words(k)) for k in p.classification_keywords]
            for p in self._personas.values()
        }

    @classmethod
    def load(cls, extra_dirs: Sequence[Path] = ()) -> PersonaLibrary:
        """The shipped personas plus every ``*.yaml``/``*.yml`` in ``extra_dirs`` (missing dirs are
        skipped); a later file with the same id overrides. Reads files: from async code call it
        through ``asyncio.to_thread``. Raises ``PersonaError`` listing the problems of all files."""
        personas: list[Persona] = []
        problems: list[str] = []
        try:
            shipped = resources.files(SHIPPED_PACKAGE)
        except ModuleNotFoundError as err:
            raise AgentfirmError(
                f"the shipped personas package {SHIPPED_PACKAGE} is not installed",
                hint="reinstall agentfirm, e.g. pip install -e .",
            ) from err
        sources = [
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in sorted(shipped.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yaml")
        ]
        for name, text in sources:
            try:
                personas.append(parse_persona(text, source=f"{SHIPPED_PACKAGE}/{name}"))
            except PersonaError as err:
                problems += err.problems
        shipped_ids = {p.id for p in personas}
        for directory in extra_dirs:
            if not directory.is_dir():
                continue
            files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
            for path in files:
                try:
                    persona = load_persona_file(path)
                except PersonaError as err:
                    problems += err.problems
                    continue
                if persona.id in shipped_ids:
                    log.info("persona.override", persona=persona.id, path=str(path))
                personas.append(persona)
        if problems:
            raise PersonaError(problems)
        return cls(personas)

    def get(self, persona_id: str) -> Persona:
        """The persona ``persona_id``; ``NotFound`` (listing the known ids) if there is none."""
        try:
            return self._personas[persona_id]
        except KeyError:
            raise NotFound(
                f"unknown persona '{persona_id}'",
                hint="use one of: " + ", ".join(sorted(self._personas)),
            ) from None

    def all(self) -> list[Persona]:
        """Every persona, sorted by id."""
        return [self._personas[pid] for pid in sorted(self._personas)]

    def classify(self, request: str) -> Classification:
        """Keyword stage of classification (deterministic, no LLM call).

        Each persona scores, per distinct keyword found in the request as whole words (case and
        simple plurals ignored), the keyword's word count — a phrase is stronger evidence. A clear
        winner (see ``MIN_SCORE``, ``MIN_LEAD``, ``MIN_RATIO``) gives stage ``keywords``;
        otherwise ``persona`` is None and stage ``ask`` (the caller may try the LLM stage)."""
        words = _words(request)
        matched: dict[str, list[str]] = {}
        scores: dict[str, float] = {}
        for pid in sorted(self._keywords):
            found = [(k, phrase) for k, phrase in self._keywords[pid] if _contains(words, phrase)]
            scores[pid] = float(sum(len(phrase) for _, phrase in found))
            if found:
                matched[pid] = [k for k, _ in found]
        ranked = sorted(scores.values(), reverse=True)
        top = ranked[0] if ranked else 0.0
        runner_up = ranked[1] if len(ranked) > 1 else 0.0
        if top >= MIN_SCORE and top - runner_up >= MIN_LEAD and top >= MIN_RATIO * runner_up:
            winner = next(pid for pid, score in scores.items() if score == top)
            return Classification(winner, "keywords", matched, scores)
        return Classification(None, "ask", matched, scores)
