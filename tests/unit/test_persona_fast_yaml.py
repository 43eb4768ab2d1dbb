"""Personas are parsed with libyaml's SafeLoader when PyYAML has it: for every shipped persona it
must give the pure-Python parser's data and the same node tree, marks included (the loader's
problems point at lines through those marks)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from agentfirm.personas.loader import parsed

ROOT = Path(__file__).resolve().parents[2]
PERSONAS = sorted((ROOT / "personas").glob("*.yaml"))


def _nodes(node: yaml.Node) -> Iterator[tuple[str, object, int, int]]:
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    yield type(node).__name__, value, node.start_mark.line, node.start_mark.column
    if isinstance(node, yaml.MappingNode):
        for key, item in node.value:
            yield from _nodes(key)
            yield from _nodes(item)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _nodes(item)


@pytest.mark.skipif(not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml")
@pytest.mark.parametrize("path", PERSONAS, ids=lambda p: p.stem)
def test_libyaml_gives_the_pure_parsers_data_and_marks(path: Path) -> None:
    text = path.read_text(encoding="utf-8")

    fast_data, fast_root = parsed(yaml.CSafeLoader, text)
    pure_data, pure_root = parsed(yaml.SafeLoader, text)

    assert fast_root is not None
    assert pure_root is not None
    assert fast_data == pure_data
    assert list(_nodes(fast_root)) == list(_nodes(pure_root))


def test_the_shipped_personas_are_found() -> None:
    assert len(PERSONAS) >= 8
