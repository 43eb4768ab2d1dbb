"""Structured output validation: validators built once per schema content, and kept bounded."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from agentfirm.build_master.research import with_research_field
from agentfirm.outputs.types import KNOWN_OUTPUT_TYPES, schema_for
from agentfirm.router.base import Message, ProviderRequest
from agentfirm.router.errors import SchemaError
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.schema_output import Validators, extract_json, parse_and_validate
from agentfirm.router.tokens import json_len

ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


def test_a_schema_built_afresh_reuses_the_validator_of_an_equal_one() -> None:
    validators = Validators()

    first = validators.get(with_research_field(schema_for("market_sizing")))
    again = validators.get(with_research_field(schema_for("market_sizing")))

    assert again is first
    assert len(validators) == 1


def test_a_schema_changed_after_it_was_passed_is_validated_as_it_now_reads() -> None:
    validators = Validators()
    schema = copy.deepcopy(ANSWER)
    parse_and_validate('{"answer": "42"}', schema, validators)

    schema["properties"]["answer"] = {"type": "integer"}

    assert parse_and_validate('{"answer": 42}', schema, validators) == {"answer": 42}
    with pytest.raises(SchemaError, match="is not of type 'integer'"):
        parse_and_validate('{"answer": "42"}', schema, validators)


def test_schemas_python_calls_equal_but_json_tells_apart_get_their_own_validators() -> None:
    validators = Validators()
    # True == 1 in Python, yet {"const": true} and {"const": 1} accept different values.
    is_true = {"type": "object", "properties": {"x": {"const": True}}}
    is_one = {"type": "object", "properties": {"x": {"const": 1}}}
    assert is_true == is_one

    assert parse_and_validate('{"x": true}', is_true, validators) == {"x": True}
    assert parse_and_validate('{"x": 1}', is_one, validators) == {"x": 1}
    with pytest.raises(SchemaError):
        parse_and_validate('{"x": 1}', is_true, validators)
    assert len(validators) == 2


def test_the_kept_json_size_is_the_schemas_as_it_now_reads() -> None:
    validators = Validators()
    schema = copy.deepcopy(ANSWER)
    assert validators.json_size(schema) == json_len(schema)

    schema["properties"]["answer"] = {"type": "integer", "description": "the answer, a number"}

    assert validators.json_size(schema) == json_len(schema) != json_len(ANSWER)
    assert validators.json_size(ANSWER, Validators.key(ANSWER)) == json_len(ANSWER)


def test_at_most_max_size_validators_are_kept_least_recently_used_dropped_first() -> None:
    validators = Validators(max_size=2)
    schemas = [schema_for(t) for t in ("swot", "timeline", "risk_register")]
    first = validators.get(schemas[0])
    validators.get(schemas[1])
    validators.get(schemas[0])  # used again: now the second is the least recent

    validators.get(schemas[2])

    assert len(validators) == 2
    assert validators.get(schemas[0]) is first


def test_an_invalid_schema_is_refused_plainly_and_not_kept() -> None:
    validators = Validators()

    with pytest.raises(SchemaError, match="the output schema itself is invalid"):
        parse_and_validate('{"answer": "42"}', {"type": "no-such-type"}, validators)

    assert len(validators) == 0


def test_problems_are_worded_by_path_and_capped_at_three() -> None:
    schema = {
        "type": "object",
        "properties": {k: {"type": "string"} for k in "abcd"},
        "required": list("abcd"),
    }

    with pytest.raises(SchemaError) as caught:
        parse_and_validate('{"a": 1, "b": 2, "c": 3, "d": 4}', schema, Validators())

    assert caught.value.message == (
        "the JSON does not match the schema: at $.a: 1 is not of type 'string'; "
        "at $.b: 2 is not of type 'string'; at $.c: 3 is not of type 'string' (and 1 more)"
    )


@pytest.mark.parametrize("output_type", sorted(KNOWN_OUTPUT_TYPES))
async def test_the_fast_validator_agrees_with_the_reference_on_module_replies(
    output_type: str,
) -> None:
    schema = with_research_field(schema_for(output_type))
    request = ProviderRequest("model", (Message("user", "Size the market"),), 4096, "execution")
    reply = await OfflineProvider().complete(replace(request, output_schema=schema))
    value = json.loads(reply.text)
    broken = {k: v for k, v in value.items() if k != "needs_research"}
    checker = Validators().get(schema)

    assert checker.fast.is_valid(value)
    assert checker.full.is_valid(value)
    assert not checker.fast.is_valid(broken)
    assert not checker.full.is_valid(broken)
    assert checker.problems(value) == []
    assert [e.message for e in checker.problems(broken)] == [
        "'needs_research' is a required property"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('  {"a": 1.5, "b": [true, null]}\n', {"a": 1.5, "b": [True, None]}),
        ('{"big": 123456789012345678901234567890}', {"big": 123456789012345678901234567890}),
        # What pydantic-core's parser refuses and ``json`` takes: a lone surrogate.
        ('{"a": "\\ud800"}', {"a": "\ud800"}),
        ('Here it is:\n```json\n{"a": 2}\n```', {"a": 2}),
        ('Sure. {"a": 3} Hope that helps.', {"a": 3}),
    ],
)
def test_a_reply_reads_as_json_would_read_it(text: str, expected: dict[str, Any]) -> None:
    assert extract_json(text) == expected
