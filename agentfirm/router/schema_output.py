"""Structured output: find the JSON in a model's reply and check it against the caller's schema
(JSON Schema draft 2020-12)."""

from __future__ import annotations

import json
import re
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as InvalidSchema
from jsonschema.exceptions import ValidationError

from agentfirm.router.errors import SchemaError

__all__ = ["SchemaError", "extract_json", "parse_and_validate"]

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_MAX_PROBLEMS = 3


def extract_json(text: str) -> Any:
    """The first JSON value in ``text``: the whole text, else a fenced block, else the first
    ``{``/``[`` that starts valid JSON (models like to add prose around it). Raises
    ``SchemaError`` when there is none."""
    stripped = text.strip()
    try:
        return json.loads(stripped)
    except json.JSONDecodeError:
        pass
    for block in _FENCE.findall(text):
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        return value
    raise SchemaError("the reply contains no JSON; answer with a single JSON object")


def _where(error: ValidationError) -> str:
    return error.json_path if error.absolute_path else "the top level"


def parse_and_validate(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in ``text``, validated against ``schema``. Raises ``SchemaError`` naming the
    first few problems (``at $.path: what``)."""
    value = extract_json(text)
    if not isinstance(value, dict):
        raise SchemaError(f"the reply is a JSON {type(value).__name__}, not an object")
    try:
        Draft202012Validator.check_schema(schema)
    except InvalidSchema as exc:  # a caller's bug, but say so plainly rather than crash oddly
        raise SchemaError(f"the output schema itself is invalid: {exc.message}") from exc
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: e.json_path)
    if errors:
        shown = "; ".join(f"at {_where(e)}: {e.message}" for e in errors[:_MAX_PROBLEMS])
        more = len(errors) - _MAX_PROBLEMS
        suffix = f" (and {more} more)" if more > 0 else ""
        raise SchemaError(f"the JSON does not match the schema: {shown}{suffix}")
    return value
