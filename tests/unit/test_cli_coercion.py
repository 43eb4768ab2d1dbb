"""Plain command-line values skip typer's pydantic adapters (cli/coercion.py) and come out as the
adapters would have made them; anything else is still converted, and refused, by typer."""

from __future__ import annotations

from typing import Any

import pytest
from typer._adapters import try_build_adapter
from typer.models import OptionInfo

from agentfirm.cli.coercion import _UNSET, taken_as_is

CASES: list[tuple[type[Any], object, Any, Any]] = [
    (str, "t_abc", None, None),
    (str, "", None, None),
    (str, "✓ ünïcode", None, None),
    (bool, True, None, None),
    (bool, False, None, None),
    (int, 50, 1, None),
    (int, "50", 1, None),
    (int, "007", None, None),
    (int, "0", 1, None),  # below min: typer's words
    (int, "11", None, 10),  # above max
    (int, 0, 1, None),
    (int, "abc", None, None),
    (int, " 5", None, None),
    (int, "+5", None, None),
    (int, "-5", None, None),
    (int, "1_000", None, None),
    (int, "٣", None, None),  # a digit, not an ASCII one
    (int, True, None, None),
    (int, 2.0, None, None),
    (bool, "yes", None, None),
    (bool, "1", None, None),
    (bool, "0", None, None),
    (bool, "true", None, None),
    (bool, "false", None, None),
    (bool, "TRUE", None, None),
    (bool, " 1", None, None),
    (str, b"bytes", None, None),
    (float, "1.5", None, None),
]


@pytest.mark.parametrize(("annotation", "value", "low", "high"), CASES, ids=repr)
def test_a_value_taken_as_is_is_what_typer_would_have_made(
    annotation: type[Any], value: object, low: Any, high: Any
) -> None:
    taken = taken_as_is(annotation, value, low, high)
    if taken is _UNSET:
        return  # typer's adapter converts (or refuses) it, as before
    adapter = try_build_adapter(annotation, OptionInfo(min=low, max=high))
    assert adapter is not None
    made = adapter.validate_python(value)
    assert (taken, type(taken)) == (made, type(made))


@pytest.mark.parametrize(
    ("annotation", "value", "low", "high"),
    [
        (int, "0", 1, None),
        (int, "abc", None, None),
        (int, "11", None, 10),
        (bool, "yes", None, None),
        (bool, "TRUE", None, None),
        (bool, " 1", None, None),
    ],
    ids=repr,
)
def test_what_needs_converting_or_refusing_is_left_to_typer(
    annotation: type[Any], value: object, low: Any, high: Any
) -> None:
    assert taken_as_is(annotation, value, low, high) is _UNSET
