"""Output types: the JSON schemas (Draft 2020-12) that sub-agents fill, and their markdown views.

A persona module names an ``output_type``; its sub-agent is given ``schema_for(output_type)`` and
the artifact is validated against it. The schemas are strict-mode friendly (closed objects, every
property required; see ``output_schemas``); ``render_markdown`` is what people read
(``output_markdown``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentfirm.errors import NotFound
from agentfirm.outputs.markdown import render
from agentfirm.outputs.schemas import BUILDERS, DRAFT

KNOWN_OUTPUT_TYPES: frozenset[str] = frozenset(BUILDERS)


def schema_for(output_type: str) -> dict[str, Any]:
    """The Draft 2020-12 JSON schema of ``output_type``: a fresh dict the caller may change.

    Raises ``NotFound`` for an unknown type."""
    builder = BUILDERS.get(output_type)
    if builder is None:
        raise _unknown(output_type)
    return {"$schema": DRAFT, "title": output_type, **builder()}


def describe_output_type(output_type: str) -> str:
    """One line saying what an artifact of ``output_type`` is (its schema's description).

    Raises ``NotFound`` for an unknown type."""
    return str(schema_for(output_type).get("description", output_type))


def render_markdown(output_type: str, content: Mapping[str, Any], *, level: int = 1) -> str:
    """Readable markdown for an artifact of ``output_type``.

    Starts with one heading at ``level`` (the content's ``title``, else the type's name); its
    parts are one level below, so a caller nesting module outputs passes ``level=2``. Content that
    does not fully match the schema still renders: missing parts are left out. Raises ``NotFound``
    for an unknown type."""
    if output_type not in KNOWN_OUTPUT_TYPES:
        raise _unknown(output_type)
    text = render(output_type, content, level=level)
    if text is None:
        raise _unknown(output_type)
    return text


def _unknown(output_type: str) -> NotFound:
    return NotFound(
        f"unknown output type '{output_type}'",
        hint="use one of: " + ", ".join(sorted(KNOWN_OUTPUT_TYPES)),
    )
