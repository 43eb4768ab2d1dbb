"""`scaffold_persona`: a commented starter persona that validates as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from agentfirm.errors import BadInput
from agentfirm.personas.library import load_persona_file
from agentfirm.personas.scaffold import SCHEMA_FILE, default_schema_ref, scaffold_persona

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "personas" / SCHEMA_FILE).read_text(encoding="utf-8"))


def _save(tmp_path: Path, persona_id: str, text: str) -> Path:
    path = tmp_path / f"{persona_id}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_scaffold_loads_and_validates_as_a_persona(tmp_path: Path) -> None:
    persona = load_persona_file(
        _save(tmp_path, "grant_writing", scaffold_persona("grant_writing", "Grant Writing"))
    )

    assert (persona.id, persona.name) == ("grant_writing", "Grant Writing")
    assert persona.classification_keywords == ["grant writing"]


def test_the_scaffold_validates_against_the_editor_schema() -> None:
    data = yaml.safe_load(scaffold_persona("grant_writing", "Grant Writing"))

    Draft202012Validator(SCHEMA).validate(data)


def test_the_first_line_points_editors_at_the_schema() -> None:
    text = scaffold_persona("grant_writing", "Grant Writing", schema_ref="persona.schema.json")

    assert text.splitlines()[0] == "# yaml-language-server: $schema=persona.schema.json"


def test_the_default_schema_ref_is_the_installed_schema_file() -> None:
    ref = default_schema_ref()

    assert ref.startswith("file://")
    assert ref.endswith(f"/{SCHEMA_FILE}")
    assert Path(ref.removeprefix("file://")).is_file()


def test_the_scaffold_runs_independent_modules_in_parallel(tmp_path: Path) -> None:
    persona = load_persona_file(_save(tmp_path, "starter", scaffold_persona("starter", "S")))

    assert len(persona.waves()[0]) >= 2


def test_a_name_with_yaml_special_characters_round_trips(tmp_path: Path) -> None:
    name = 'Ops: "on-call" # reviews'

    persona = load_persona_file(_save(tmp_path, "ops", scaffold_persona("ops", name)))

    assert persona.name == name


@pytest.mark.parametrize("bad_id", ["Grant Writing", "grant/writing", "", "-grant"])
def test_an_invalid_id_is_refused(bad_id: str) -> None:
    with pytest.raises(BadInput, match="is not a valid persona id"):
        scaffold_persona(bad_id, "Grant Writing")


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(BadInput, match="the persona name is empty"):
        scaffold_persona("grant_writing", "   ")
