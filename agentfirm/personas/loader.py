"""Persona files: parse YAML keeping line numbers, validate, and put each problem on its line.

PyYAML's plain data forgets where values came from, so the file is parsed once into a node tree
(which keeps positions) and constructed from that same tree. A problem names the path of the value
at fault (``("modules", 2, "tier")``); ``located`` turns it into ``FILE:LINE: what — fix``.
Every problem in a file is reported, not only the first (a YAML syntax error stops at the first).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from agentfirm.domain.models import TIERS
from agentfirm.errors import PersonaError
from agentfirm.personas.model import (
    GRAPH_ERROR,
    PROBLEM_ERROR,
    ModuleTemplate,
    Persona,
    Problem,
    graph_problems,
)

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


_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)
"""libyaml's SafeLoader when PyYAML has it: the same nodes, marks and data as the pure-Python
one, several times faster (every process that drives a task loads every persona)."""


def parsed(loader_class: type[yaml.SafeLoader], text: str) -> tuple[Any, yaml.Node | None]:
    """The data of ``text`` and its node tree, read by ``loader_class``."""
    loader = loader_class(text)
    try:
        root = loader.get_single_node()
        return (loader.construct_document(root) if root is not None else None), root
    finally:
        loader.dispose()


def _parse_yaml(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """The data and its node tree (for line numbers), from one parse. Raises ``PersonaError``
    with the line of a syntax error, in the pure-Python parser's words (libyaml's differ), so a
    text libyaml refuses is read again by it."""
    if _FAST_LOADER is not None:
        with contextlib.suppress(yaml.YAMLError):
            return parsed(_FAST_LOADER, text)
    try:
        return parsed(yaml.SafeLoader, text)
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


def _duplicate_keys(root: yaml.Node | None) -> list[Problem]:
    """Keys that appear twice in one mapping (YAML silently keeps the last), at any depth."""
    problems: list[Problem] = []
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())] if root else []
    while stack:
        node, loc = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                if name in seen:
                    problems.append(
                        Problem(
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


def _located(source: str, root: yaml.Node | None, problems: Sequence[Problem]) -> list[str]:
    """``FILE:LINE: what — fix`` for each problem, in line order."""
    lines = sorted((_line_of(root, p.loc), p.what, p.fix) for p in problems)
    return [f"{source}:{line}: {what} — {fix}" for line, what, fix in lines]


def _field_path(parts: Sequence[str | int]) -> str:
    """A path as people write it: ``modules[2].tier``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")


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
            Problem(
                (),
                "the file is not a mapping of persona fields",
                "write 'key: value' lines for: " + ", ".join(Persona.model_fields),
            )
        )
    else:
        declared = data.get("id", persona_id)
        if declared != persona_id:
            problems.append(
                Problem(
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
    raise PersonaError(_located(source, root, problems))


def _from_validation(err: ValidationError, data: dict[str, Any]) -> list[Problem]:
    problems: list[Problem] = []
    for detail in err.errors():
        ctx = detail.get("ctx", {})
        if detail["type"] == GRAPH_ERROR:
            problems += ctx["problems"]
        else:
            problems.append(_describe(detail, ctx, data))
    if not any(d["type"] == GRAPH_ERROR for d in err.errors()):
        # Field errors stop pydantic before the graph check; run it on whatever modules parsed.
        problems += graph_problems(_raw_modules(data))
    return problems


def _describe(detail: ErrorDetails, ctx: dict[str, Any], data: dict[str, Any]) -> Problem:
    loc = tuple(detail["loc"])
    subject, field = _subject(loc, data)
    kind = detail["type"]
    if kind == PROBLEM_ERROR:
        return Problem(loc, f"{subject}: {ctx['what']}", ctx["fix"])
    if kind == "missing":
        return Problem(loc, f"{subject} has no '{field}'", f"add a '{field}:' line")
    if kind == "extra_forbidden":
        model = Persona if len(loc) == 1 else ModuleTemplate
        return Problem(loc, f"{subject} has unknown field '{field}'", _fields_fix(model))
    if kind == "literal_error" and loc[-1] == "tier":
        return Problem(
            loc,
            f"{subject} has unknown tier '{detail['input']}'",
            "use one of: " + ", ".join(TIERS),
        )
    reason, fix = _TYPE_FIXES.get(
        kind, (detail["msg"], "see `agentfirm personas show` for examples")
    )
    return Problem(loc, f"{subject}: '{field}' {reason}", fix)


def _subject(loc: tuple[str | int, ...], data: dict[str, Any]) -> tuple[str, str]:
    """Who the problem is about ("persona", "module 'x'") and the field path within it."""
    if len(loc) >= 3 and loc[0] == "modules" and isinstance(loc[1], int):
        modules = data.get("modules")
        entry = modules[loc[1]] if isinstance(modules, list) and loc[1] < len(modules) else None
        mid = entry.get("id") if isinstance(entry, dict) else None
        subject = f"module '{mid}'" if isinstance(mid, str) else f"module {loc[1] + 1}"
        return subject, _field_path(loc[2:])
    return "persona", _field_path(loc)


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
