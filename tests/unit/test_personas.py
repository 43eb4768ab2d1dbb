"""Persona templates: loading, validation messages with file:line, waves, and classification."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from agentfirm.domain.models import ModuleSpec
from agentfirm.errors import NotFound, PersonaError
from agentfirm.personas.library import (
    SHIPPED_PACKAGE,
    ModuleTemplate,
    Persona,
    PersonaLibrary,
    check_modules,
    load_persona_file,
    module_waves,
)
from agentfirm.personas.scaffold import SCHEMA_FILE, render_persona_schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIR = ROOT / "personas"
SHIPPED = sorted(SHIPPED_DIR.glob("*.yaml"))
BAD = ROOT / "tests" / "data" / "personas"


def _module(mid: str, *deps: str, tier: str = "execution") -> ModuleTemplate:
    return ModuleTemplate.model_validate(
        {
            "id": mid,
            "title": mid.title(),
            "brief": f"Do {mid}.",
            "tier": tier,
            "depends_on": list(deps),
            "output_type": "research_notes",
        }
    )


def _persona(pid: str, keywords: list[str], modules: list[ModuleTemplate] | None = None) -> Persona:
    return Persona(
        id=pid,
        name=pid.title(),
        description=f"The {pid} persona.",
        classification_keywords=keywords,
        modules=modules or [_module("only")],
        quality_checklist=["It is done"],
    )


def _problems(path: Path) -> list[str]:
    with pytest.raises(PersonaError) as caught:
        load_persona_file(path)
    return caught.value.problems


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


VALID = """\
name: Valid
description: A valid persona.
classification_keywords: [Valid Thing, valid thing, Other]
modules:
  - id: a
    title: A
    brief: Do A.
    tier: execution
    output_type: research_notes
quality_checklist:
  - A is done
"""


# ---------------------------------------------------------------------------- shipped personas


def test_at_least_three_personas_are_shipped() -> None:
    assert {"patent_research", "market_research", "technical_due_diligence"} <= {
        p.stem for p in SHIPPED
    }


def test_the_eight_professional_personas_are_shipped() -> None:
    assert {
        "patent_research",
        "market_research",
        "technical_due_diligence",
        "literature_review",
        "software_feature_design",
        "competitive_analysis",
        "incident_postmortem",
        "long_form_article",
    } <= {p.stem for p in SHIPPED}


def test_the_persona_schema_file_is_current() -> None:
    current = (SHIPPED_DIR / SCHEMA_FILE).read_text(encoding="utf-8")

    assert current == render_persona_schema(), (
        "personas/persona.schema.json is out of date: run python scripts/gen_persona_schema.py"
    )


def test_the_schema_file_is_installed_beside_the_shipped_personas() -> None:
    assert resources.files(SHIPPED_PACKAGE).joinpath(SCHEMA_FILE).is_file()


def test_the_schema_lets_the_file_name_give_the_id() -> None:
    schema = json.loads((SHIPPED_DIR / SCHEMA_FILE).read_text(encoding="utf-8"))

    assert "id" in schema["properties"]
    assert "id" not in schema["required"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_persona_validates_against_the_editor_schema(path: Path) -> None:
    schema = json.loads((SHIPPED_DIR / SCHEMA_FILE).read_text(encoding="utf-8"))

    Draft202012Validator(schema).validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_persona_names_the_schema_for_editors(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]

    assert first == f"# yaml-language-server: $schema={SCHEMA_FILE}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_persona_keeps_the_reasoning_tier_for_judgement_not_for_everything(
    path: Path,
) -> None:
    tiers = {m.tier for m in load_persona_file(path).modules}

    assert {"reasoning", "execution"} <= tiers


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_persona_loads_and_validates(path: Path) -> None:
    persona = load_persona_file(path)

    assert persona.id == path.stem
    assert 4 <= len(persona.modules) <= 7
    assert persona.classification_keywords
    assert len(persona.quality_checklist) >= 3


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_persona_runs_at_least_two_modules_in_its_first_wave(path: Path) -> None:
    assert len(load_persona_file(path).waves()[0]) >= 2


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_persona_has_a_diamond(path: Path) -> None:
    """Some module is reached from one ancestor along two different dependency paths."""
    persona = load_persona_file(path)
    deps = {m.id: set(m.depends_on) for m in persona.modules}

    def ancestors(mid: str) -> set[str]:
        direct = deps[mid]
        return direct.union(*(ancestors(d) for d in direct))

    def has_diamond(mid: str) -> bool:
        lineages = [ancestors(d) | {d} for d in deps[mid]]
        return any(a & b for i, a in enumerate(lineages) for b in lineages[i + 1 :])

    assert any(has_diamond(m) for m in deps)


def test_patent_research_keeps_the_seed_chain_and_checklist() -> None:
    persona = load_persona_file(SHIPPED_DIR / "patent_research.yaml")
    order = [m for wave in persona.waves() for m in wave]
    by_id = {m.id: m for m in persona.modules}

    assert order.index("prior_art_search") < order.index("novelty_analysis")
    assert order.index("novelty_analysis") < order.index("claims_drafting")
    assert "novelty_analysis" in by_id["claims_drafting"].depends_on
    assert (by_id["novelty_analysis"].tier, by_id["claims_drafting"].tier) == ("reasoning",) * 2
    assert {
        "All cited patents include publication numbers",
        "Novelty analysis addresses at least 3 closest prior art references",
        "Claims follow standard patent claim structure",
    } <= set(persona.quality_checklist)


def test_library_loads_the_shipped_personas_from_the_installed_package() -> None:
    ids = {p.id for p in PersonaLibrary.load().all()}

    assert ids >= {p.stem for p in SHIPPED}


def test_user_persona_overrides_the_shipped_one_with_the_same_id(tmp_path: Path) -> None:
    text = (SHIPPED_DIR / "market_research.yaml").read_text(encoding="utf-8")
    _write(tmp_path, "market_research.yaml", text.replace("Market Research & Sizing", "Ours"))

    library = PersonaLibrary.load([tmp_path])

    assert library.get("market_research").name == "Ours"


def test_library_skips_an_extra_dir_that_does_not_exist(tmp_path: Path) -> None:
    library = PersonaLibrary.load([tmp_path / "missing"])

    assert library.get("patent_research").id == "patent_research"


def test_library_reports_the_problems_of_every_bad_user_file(tmp_path: Path) -> None:
    shutil.copy(BAD / "cycle.yaml", tmp_path)
    shutil.copy(BAD / "unknown_tier.yaml", tmp_path)

    with pytest.raises(PersonaError) as caught:
        PersonaLibrary.load([tmp_path])

    assert [Path(p.split(":")[0]).name for p in caught.value.problems] == [
        "cycle.yaml",
        "unknown_tier.yaml",
    ]


def test_get_of_an_unknown_persona_lists_the_known_ids() -> None:
    library = PersonaLibrary([_persona("alpha", []), _persona("beta", [])])

    with pytest.raises(NotFound, match=r"unknown persona 'gamma'.*alpha, beta"):
        library.get("gamma")


# ---------------------------------------------------------------------------- bad files


def test_yaml_syntax_error_names_the_file_and_the_marker_line() -> None:
    [problem] = _problems(BAD / "syntax_error.yaml")

    assert problem.startswith(f"{BAD / 'syntax_error.yaml'}:9: invalid YAML")


def test_dependency_cycle_names_the_modules_and_the_line_of_one_of_them() -> None:
    [problem] = _problems(BAD / "cycle.yaml")

    assert problem.startswith(f"{BAD / 'cycle.yaml'}:9: modules form a dependency cycle")
    assert all(name in problem for name in ("gather", "analyse", "summarise"))


def test_unknown_dependency_names_the_module_the_line_and_the_valid_ids() -> None:
    [problem] = _problems(BAD / "unknown_dependency.yaml")

    assert problem == (
        f"{BAD / 'unknown_dependency.yaml'}:16: module 'b' depends on unknown module 'zz'"
        " — use one of: a, c"
    )


def test_unknown_tier_names_the_module_the_line_and_the_tiers() -> None:
    [problem] = _problems(BAD / "unknown_tier.yaml")

    assert problem == (
        f"{BAD / 'unknown_tier.yaml'}:14: module 'polish' has unknown tier 'turbo'"
        " — use one of: reasoning, execution, utility"
    )


def test_every_problem_in_a_file_is_reported_in_line_order(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "many.yaml",
        """\
name: Many problems
description: Three things wrong.
modules:
  - id: a
    title: A
    tier: execution
    output_type: research_notes
  - id: b
    title: B
    brief: Do B.
    tier: fast
    depends_on: [nope]
    output_type: research_notes
quality_checklist: [ok]
""",
    )

    problems = [p.removeprefix(f"{path}:") for p in _problems(path)]

    assert [p.split(":")[0] for p in problems] == ["4", "11", "12"]
    assert "module 'a' has no 'brief'" in problems[0]
    assert "unknown tier 'fast'" in problems[1]
    assert "unknown module 'nope'" in problems[2]


def test_unknown_output_type_lists_the_known_types(tmp_path: Path) -> None:
    path = _write(tmp_path, "valid.yaml", VALID.replace("research_notes", "essay"))

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:9: module 'a': unknown output type 'essay'")
    assert "research_notes" in problem


def test_unknown_field_lists_the_allowed_fields(tmp_path: Path) -> None:
    path = _write(tmp_path, "valid.yaml", VALID.replace("    tier:", "    model: big\n    tier:"))

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:8: module 'a' has unknown field 'model'")
    assert "depends_on" in problem


def test_id_that_differs_from_the_file_name_is_reported(tmp_path: Path) -> None:
    path = _write(tmp_path, "valid.yaml", "id: other\n" + VALID)

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:1: id 'other' does not match the file name 'valid.yaml'")


def test_duplicate_key_is_reported_at_the_second_occurrence(tmp_path: Path) -> None:
    path = _write(tmp_path, "valid.yaml", VALID + "name: Again\n")

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:12: key 'name' appears twice (first on line 1)")


def test_empty_checklist_is_reported(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "valid.yaml",
        VALID.replace("quality_checklist:\n  - A is done\n", "quality_checklist: []\n"),
    )

    [problem] = _problems(path)

    assert problem.startswith(f"{path}:10: persona: 'quality_checklist' is empty")


def test_keywords_are_lower_cased_and_deduplicated(tmp_path: Path) -> None:
    persona = load_persona_file(_write(tmp_path, "valid.yaml", VALID))

    assert persona.classification_keywords == ["valid thing", "other"]


def test_persona_model_rejects_a_cycle_built_in_code() -> None:
    with pytest.raises(ValidationError, match="dependency cycle"):
        _persona("loop", [], [_module("a", "b"), _module("b", "a")])


# ---------------------------------------------------------------------------- waves and plans


def test_waves_group_modules_by_dependency_level_in_file_order() -> None:
    persona = _persona(
        "p",
        [],
        [_module("d", "b", "c"), _module("c", "a"), _module("b", "a"), _module("a"), _module("e")],
    )

    assert persona.waves() == [["a", "e"], ["c", "b"], ["d"]]


def test_to_plan_carries_modules_and_waves() -> None:
    persona = _persona("p", [], [_module("a"), _module("b", "a", tier="reasoning")])

    plan = persona.to_plan()

    assert [(m.id, m.tier, m.depends_on) for m in plan.modules] == [
        ("a", "execution", []),
        ("b", "reasoning", ["a"]),
    ]
    assert plan.waves == [["a"], ["b"]]


def test_check_modules_reports_cycles_and_unknown_output_types_of_a_plan() -> None:
    modules = [
        ModuleSpec(id="a", depends_on=["b"], output_type="poem"),
        ModuleSpec(id="b", depends_on=["a"]),
    ]

    problems = check_modules(modules)

    assert any("dependency cycle" in p for p in problems)
    assert any("unknown output type 'poem'" in p for p in problems)


def test_module_waves_refuses_an_invalid_graph() -> None:
    with pytest.raises(ValueError, match="unknown module 'x'"):
        module_waves([ModuleSpec(id="a", depends_on=["x"])])


# ---------------------------------------------------------------------------- classification


@pytest.fixture
def toy_library() -> PersonaLibrary:
    return PersonaLibrary(
        [
            _persona("patents", ["patent", "prior art", "claim"]),
            _persona("markets", ["market size", "competitor"]),
        ]
    )


def test_classify_picks_a_clear_keyword_winner(toy_library: PersonaLibrary) -> None:
    result = toy_library.classify("Search PRIOR ART for this patent")

    assert (result.persona, result.stage) == ("patents", "keywords")
    assert result.matched == {"patents": ["patent", "prior art"]}
    assert result.scores == {"markets": 0.0, "patents": 3.0}


def test_classify_tolerates_simple_plurals(toy_library: PersonaLibrary) -> None:
    result = toy_library.classify("Who are the competitors? And check these claims.")

    assert result.matched == {"markets": ["competitor"], "patents": ["claim"]}


def test_classify_matches_whole_words_only(toy_library: PersonaLibrary) -> None:
    result = toy_library.classify("It is patently a competitive art prior to this")

    assert result.matched == {}


def test_classify_asks_when_personas_tie(toy_library: PersonaLibrary) -> None:
    result = toy_library.classify("Competitor patent filings")

    assert (result.persona, result.stage) == (None, "ask")
    assert result.scores == {"markets": 1.0, "patents": 1.0}


def test_classify_asks_when_the_lead_is_too_small(toy_library: PersonaLibrary) -> None:
    result = toy_library.classify("market size of competitor prior art")

    assert (result.persona, result.stage) == (None, "ask")
    assert result.scores == {"markets": 3.0, "patents": 2.0}


def test_classify_asks_when_nothing_matches(toy_library: PersonaLibrary) -> None:
    result = toy_library.classify("Write a birthday poem for my cat")

    assert (result.persona, result.stage, result.matched) == (None, "ask", {})


def test_classify_explains_a_keyword_win_with_the_words_and_scores(
    toy_library: PersonaLibrary,
) -> None:
    result = toy_library.classify("Check the prior art and claims of this patent, and a competitor")

    assert result.reason == "keywords patent, prior art, claim (score 4; next markets 1)"


def test_classify_explains_a_deferral(toy_library: PersonaLibrary) -> None:
    assert toy_library.classify("Competitor patent filings").reason == (
        "no clear keyword winner: markets 1, patents 1"
    )
    assert toy_library.classify("A poem").reason == "no persona's keywords occur in the request"


@pytest.mark.parametrize(
    ("request_text", "expected"),
    [
        ("Find prior art for my invention and assess its novelty", "patent_research"),
        ("Draft patent claims for a self-cleaning solar panel", "patent_research"),
        ("Estimate the addressable market and competitors for vegan dog food", "market_research"),
        ("Go-to-market plan and market sizing for a B2B invoicing app", "market_research"),
        ("Technical due diligence on a SaaS company we plan to acquire", "technical_due_diligence"),
        (
            "Review the codebase and technical debt of an acquisition target",
            "technical_due_diligence",
        ),
    ],
)
def test_classify_routes_clear_requests_to_the_shipped_persona(
    request_text: str, expected: str
) -> None:
    library = PersonaLibrary([load_persona_file(p) for p in SHIPPED])

    result = library.classify(request_text)

    assert (result.persona, result.stage) == (expected, "keywords")
    assert result.matched[expected]


@pytest.mark.parametrize(
    "request_text",
    [
        "Plan a team offsite in Lisbon",
        "Is the market for patent analytics tools worth entering?",
    ],
)
def test_classify_defers_ambiguous_or_unrelated_requests_to_the_shipped_personas(
    request_text: str,
) -> None:
    library = PersonaLibrary([load_persona_file(p) for p in SHIPPED])

    assert library.classify(request_text).stage == "ask"
