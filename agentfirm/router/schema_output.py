"""Structured output: find the JSON in a model's reply and check it against the caller's schema
(JSON Schema draft 2020-12).

Two implementations share the work: ``jsonschema-rs`` decides whether a reply is valid (some
25 us for a module's reply, where ``jsonschema`` takes about 1 ms), and ``jsonschema`` checks
each schema against the metaschema and words the problems of a reply that is not — it is the
reference: a reply it finds nothing wrong with is accepted."""

from __future__ import annotations

import json
import pickle
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import pydantic_core
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError as InvalidSchema
from jsonschema.exceptions import ValidationError

from agentfirm.router.errors import SchemaError
from agentfirm.router.tokens import json_len

__all__ = ["SchemaError", "Validator", "Validators", "extract_json", "parse_and_validate"]

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.DOTALL)
_MAX_PROBLEMS = 3
_MAX_VALIDATORS = 64


def extract_json(text: str) -> Any:
    """The first JSON value in ``text``: the whole text, else a fenced block, else the first
    ``{``/``[`` that starts valid JSON (models like to add prose around it). Raises
    ``SchemaError`` when there is none."""
    try:
        # pydantic-core's parser: a module's reply in a quarter of ``json.loads``'s time, and
        # the same values; what it refuses (a lone surrogate, deep nesting) ``json`` may take.
        return pydantic_core.from_json(text)
    except ValueError:
        pass
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


@dataclass(frozen=True)
class Validator:
    """One schema's validators: ``fast`` to decide, ``full`` to say what is wrong."""

    fast: jsonschema_rs.Validator
    full: Draft202012Validator

    def problems(self, value: Any) -> list[ValidationError]:
        """What is wrong with ``value`` (empty: it is valid), by path."""
        if self.fast.is_valid(value):
            return []
        return sorted(self.full.iter_errors(value), key=lambda e: e.json_path)


class Validators:
    """Validators for output schemas, each schema checked against the metaschema and its
    validators built once.

    Callers send the same few schemas over and over (one per output type), and checking a schema
    and building its validator costs some 2.5 ms, many times what validating a reply costs.

    Keyed by the schema's content, not its identity (callers build a fresh dict per call, and may
    change one they passed before). The key is the schema's pickle: exact — unlike ``==``, which
    takes ``True`` for ``1`` — and a sixth of the cost of its JSON; equal schemas whose pickles
    differ (the same values shared differently) merely get validators of their own. At most
    ``max_size`` are kept, the least recently used dropped first."""

    def __init__(self, max_size: int = _MAX_VALIDATORS) -> None:
        self._max_size = max_size
        self._built: OrderedDict[bytes, Validator] = OrderedDict()
        self._sizes: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._built)

    @staticmethod
    def key(schema: dict[str, Any]) -> bytes:
        """What ``schema`` is kept under: worked out once per call by a caller that needs it
        twice (``json_size``, then ``get``)."""
        return pickle.dumps(schema, pickle.HIGHEST_PROTOCOL)

    def json_size(self, schema: dict[str, Any], key: bytes | None = None) -> int:
        """``tokens.json_len(schema)``, kept by content like the validators: a module's schema
        took some 12 us a call to serialise again, twice its key's cost."""
        key = self.key(schema) if key is None else key
        size = self._sizes.get(key)
        if size is not None:
            self._sizes.move_to_end(key)
            return size
        size = self._sizes[key] = json_len(schema)
        if len(self._sizes) > self._max_size:
            self._sizes.popitem(last=False)
        return size

    def get(self, schema: dict[str, Any], key: bytes | None = None) -> Validator:
        """The validators of ``schema`` (``key``: its ``key``, when the caller has it already).
        Raises ``SchemaError`` when the schema itself is invalid (nothing is kept then)."""
        key = self.key(schema) if key is None else key
        validator = self._built.get(key)
        if validator is not None:
            self._built.move_to_end(key)
            return validator
        try:
            Draft202012Validator.check_schema(schema)
        except InvalidSchema as exc:  # a caller's bug, but say so plainly rather than crash oddly
            raise SchemaError(f"the output schema itself is invalid: {exc.message}") from exc
        # Built from a private copy: the caller's dict may change after this call. Formats are
        # annotations only, as in ``jsonschema`` without a format checker; no remote $ref is
        # ever fetched.
        private = pickle.loads(key)  # our own bytes, made just above
        validator = Validator(
            fast=jsonschema_rs.Draft202012Validator(private, validate_formats=False, offline=True),
            full=Draft202012Validator(private),
        )
        self._built[key] = validator
        if len(self._built) > self._max_size:
            self._built.popitem(last=False)
        return validator


def parse_and_validate(
    text: str,
    schema: dict[str, Any],
    validators: Validators | None = None,
    *,
    key: bytes | None = None,
) -> dict[str, Any]:
    """The JSON object in ``text``, validated against ``schema`` (its validators taken from
    ``validators``, by ``key`` when given, else built for this call). Raises ``SchemaError``
    naming the first few problems (``at $.path: what``)."""
    value = extract_json(text)
    if not isinstance(value, dict):
        raise SchemaError(f"the reply is a JSON {type(value).__name__}, not an object")
    validator = (validators if validators is not None else Validators(max_size=1)).get(schema, key)
    errors = validator.problems(value)
    if errors:
        shown = "; ".join(f"at {_where(e)}: {e.message}" for e in errors[:_MAX_PROBLEMS])
        more = len(errors) - _MAX_PROBLEMS
        suffix = f" (and {more} more)" if more > 0 else ""
        raise SchemaError(f"the JSON does not match the schema: {shown}{suffix}")
    return value


def repair_prompt(error: SchemaError) -> str:
    """What a model is told when its reply did not match the schema: the repair's ask."""
    return (
        f"Your previous reply was not valid: {error.message}. Reply again with only the corrected "
        "JSON object, matching the schema exactly."
    )
