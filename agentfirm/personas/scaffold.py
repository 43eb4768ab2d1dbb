"""Help for people writing persona files: the JSON schema editors use, and a starter file.

``personas/persona.schema.json`` is generated from the pydantic model (``render_persona_schema``,
written by ``scripts/gen_persona_schema.py``; a test keeps it current), so an editor with the YAML
language server autocompletes fields, tiers and output types and flags typos as you type.
``scaffold_persona`` writes a commented starter that already validates.
"""

from __future__ import annotations

import json
import re
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

from agentfirm.errors import BadInput
from agentfirm.outputs.types import KNOWN_OUTPUT_TYPES
from agentfirm.personas.library import SHIPPED_PACKAGE
from agentfirm.personas.model import ID_PATTERN, Persona

SCHEMA_FILE = "persona.schema.json"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


def persona_json_schema() -> dict[str, Any]:
    """The JSON schema of a persona file. ``id`` is optional in a file (the file name gives it)."""
    schema = Persona.model_json_schema()
    schema["required"] = [name for name in schema.get("required", []) if name != "id"]
    return {
        "$schema": _DRAFT,
        "$comment": "Generated from agentfirm.personas.model.Persona by "
        "scripts/gen_persona_schema.py; do not edit by hand.",
        **schema,
        "title": "agentfirm persona",
    }


def render_persona_schema() -> str:
    """``persona_json_schema()`` as the text of ``persona.schema.json``."""
    return json.dumps(persona_json_schema(), indent=2, ensure_ascii=False) + "\n"


def default_schema_ref() -> str:
    """Where the installed schema is, as a ``file://`` URI, for a persona kept anywhere; the
    bare file name when the package is not a plain directory (e.g. a zip)."""
    try:
        target = resources.files(SHIPPED_PACKAGE).joinpath(SCHEMA_FILE)
    except ModuleNotFoundError:
        return SCHEMA_FILE
    if isinstance(target, Path) and target.is_file():
        return target.as_uri()
    return SCHEMA_FILE


def _comment_block(text: str) -> str:
    return "\n".join(f"#   {line}" for line in textwrap.wrap(text, width=94))


def scaffold_persona(persona_id: str, name: str, *, schema_ref: str | None = None) -> str:
    """YAML text of a commented starter persona that validates as it is; save it as
    ``<persona_id>.yaml``. ``schema_ref`` is the ``$schema`` editors load (default: the installed
    ``persona.schema.json``). Raises ``BadInput`` for an id that is not a valid persona id or an
    empty name."""
    if not re.match(ID_PATTERN, persona_id):
        raise BadInput(
            f"'{persona_id}' is not a valid persona id",
            hint="use lower-case letters, digits, '_' or '-', starting with a letter or digit",
        )
    name = " ".join(name.split())
    if not name:
        raise BadInput(
            "the persona name is empty", hint="give a display name, e.g. 'Grant Writing'"
        )
    keyword = json.dumps(name.lower(), ensure_ascii=False)
    output_types = _comment_block(", ".join(sorted(KNOWN_OUTPUT_TYPES)) + ".")
    return _TEMPLATE.format(
        schema_ref=schema_ref or default_schema_ref(),
        persona_id=persona_id,
        name=json.dumps(name, ensure_ascii=False),
        keyword=keyword,
        output_types=output_types,
    )


_TEMPLATE = """\
# yaml-language-server: $schema={schema_ref}
#
# A persona for agentfirm: one kind of professional work, as data. Save this file as
# {persona_id}.yaml in your personas directory (the config dir's personas/), then run
# `agentfirm personas validate {persona_id}.yaml` and `agentfirm personas show {persona_id}`.
# The id is the file name; an `id:` line, if present, must match it.

name: {name}

# What the work is and what it delivers. When no persona's keywords clearly win, an LLM picks
# a persona by reading these descriptions, so say plainly what requests this persona is for.
description: >-
  Replace this with two or three sentences: what the client asks for, what the team does, and
  what the deliverable contains.

# Words and phrases that point a request here: whole words, case and plurals ignored; a phrase
# scores one point per word. Prefer terms of the trade over everyday words that other personas
# could claim too.
classification_keywords:
  - {keyword}

# Each module is one sub-agent's scoped job; depends_on makes them a graph. Modules whose
# dependencies are done run in parallel, so independent research belongs in separate modules.
#   tier: reasoning (judgement, synthesis), execution (research, drafting), utility (cheap,
#     mechanical work)
#   output_type: the JSON schema the sub-agent must fill, one of:
{output_types}
modules:
  - id: background_research
    title: Background research
    tier: execution
    depends_on: []
    output_type: research_notes
    brief: >-
      Gather the facts the rest of the work needs: figures, examples, standards and expert
      views on the subject of the request. Each finding is one checkable statement with the
      evidence for it and a source precise enough to find again.

  - id: client_context
    title: The client's situation
    tier: execution
    depends_on: []
    output_type: research_notes
    brief: >-
      From the request and any attached material, set out the client's goals, constraints,
      resources and deadlines. Mark everything inferred rather than stated as an assumption.

  - id: analysis
    title: Analysis
    tier: reasoning
    depends_on: [background_research, client_context]
    output_type: analysis_document
    brief: >-
      Apply the research to the client's situation: weigh the options, say what the evidence
      supports and how strongly, and state each conclusion with its basis and a confidence.

  - id: recommendation
    title: Recommendation
    tier: reasoning
    depends_on: [analysis, background_research]
    output_type: recommendation
    brief: >-
      Recommend what the client should do, grounded in the analysis: weigh at least two
      options, name the risks with mitigations, and give next steps with owners and timing.

# What the finished deliverable is judged against, item by item, pass or fail with evidence.
# Make each item checkable by reading the deliverable.
quality_checklist:
  - Every factual claim cites its source
  - Assumptions are stated as assumptions
  - The recommendation follows from the analysis and names concrete next steps
"""
