"""Output-type schemas are valid Draft 2020-12, make artifacts checkable, and render to markdown."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from agentfirm.errors import NotFound
from agentfirm.outputs.types import KNOWN_OUTPUT_TYPES, render_markdown, schema_for

SAMPLES: dict[str, dict[str, Any]] = {
    "research_notes": {
        "summary": "Two close references exist.",
        "findings": [
            {
                "claim": "US 9,876,543 B2 discloses a self-cleaning panel coating",
                "evidence": "col. 3, l. 12-30",
                "source": "US 9,876,543 B2 (2018-01-23)",
            }
        ],
        "open_questions": ["Are there Chinese utility models?"],
    },
    "analysis_document": {
        "title": "Novelty analysis",
        "summary": "Feature F3 is new.",
        "sections": [{"heading": "Closest prior art", "body": "D1 discloses F1 and F2."}],
        "conclusions": [{"conclusion": "F3 is novel", "confidence": "medium", "basis": "D1-D3"}],
        "open_questions": [],
    },
    "structured_document": {
        "title": "Draft claims",
        "summary": "One independent method claim.",
        "sections": [
            {
                "heading": "Independent claims",
                "items": [{"label": "1", "text": "A method of cleaning a panel, comprising…"}],
            }
        ],
        "notes": ["Claim 1 could be broadened."],
    },
    "market_sizing": {
        "summary": "A 1.2 billion market.",
        "market_definition": "Vegan dog food sold to households",
        "geography": "EU",
        "currency": "EUR",
        "base_year": 2025,
        "estimates": [
            {
                "approach": "bottom_up",
                "tam": 1_200_000_000,
                "sam": 300_000_000,
                "som": 15_000_000,
                "calculation": "10M dog households × 120 EUR",
            }
        ],
        "growth": {"cagr_pct": 8.5, "horizon_years": 5, "drivers": ["Flexitarian owners"]},
        "assumptions": [{"assumption": "2% switch", "rationale": "Survey data"}],
        "sources": ["FEDIAF 2024"],
    },
    "comparison_table": {
        "title": "Competitors",
        "criteria": ["Price", "Taste"],
        "options": [
            {
                "name": "Acme | Co",
                "ratings": [
                    {"criterion": "Price", "rating": "high", "note": "€4/kg"},
                    {"criterion": "Taste", "rating": "good", "note": ""},
                ],
            },
            {"name": "Globex", "ratings": [{"criterion": "Price", "rating": "low", "note": "x"}]},
        ],
        "takeaways": ["Nobody is cheap and tasty."],
    },
    "recommendation": {
        "summary": "Enter the premium segment.",
        "recommendation": "Launch in Germany first",
        "confidence": "medium",
        "rationale": ["Largest SAM"],
        "options_considered": [{"option": "France first", "assessment": "Smaller"}],
        "risks": [{"risk": "Retail listing fees", "mitigation": "Start online"}],
        "next_steps": [{"action": "Run 20 interviews", "owner": "PM", "timing": "2 weeks"}],
    },
    "risk_register": {
        "summary": "One critical risk.",
        "risks": [
            {
                "title": "Single maintainer of billing",
                "category": "people",
                "severity": "critical",
                "likelihood": "medium",
                "evidence": "git log",
                "mitigation": "Pair a second engineer",
                "effort": "4 engineer-weeks",
            }
        ],
    },
    "timeline": {
        "summary": "A bad config push took checkout down for 42 minutes.",
        "timezone": "UTC",
        "events": [
            {
                "time": "2025-03-04T14:02Z",
                "phase": "trigger",
                "event": "Config change 812 rolled out to all regions",
                "source": "deploy log",
            },
            {
                "time": "2025-03-04T14:09Z",
                "phase": "detection",
                "event": "Checkout error-rate alert fired",
                "source": "PagerDuty",
            },
        ],
        "gaps": ["No record of who approved change 812"],
    },
    "action_plan": {
        "summary": "Stop unreviewed config pushes first.",
        "actions": [
            {
                "action": "Stage config rollouts by region",
                "owner": "Platform team",
                "priority": "high",
                "due": "2025-04-01",
                "addresses": "Global blast radius of config changes",
                "done_when": "A config push reaches one region first",
            }
        ],
    },
    "requirements": {
        "summary": "Admins cannot export audit logs.",
        "goals": ["Self-serve export"],
        "non_goals": ["Real-time streaming"],
        "user_stories": [
            {
                "id": "US1",
                "as_a": "an admin",
                "i_want": "to export 90 days of audit logs as CSV",
                "so_that": "I can answer auditors",
                "priority": "must",
                "acceptance_criteria": ["Given 90 days of logs, the CSV has every row"],
            }
        ],
        "non_functional": [
            {"category": "performance", "requirement": "Fast export", "measure": "p95 < 30 s"}
        ],
        "open_questions": [],
    },
    "swot": {
        "title": "Acme against the top three rivals",
        "summary": "Strong product, weak distribution.",
        "strengths": [{"point": "Best-rated onboarding", "evidence": "G2 reviews"}],
        "weaknesses": [{"point": "No partner channel", "evidence": "Sales data"}],
        "opportunities": [{"point": "Mid-market is underserved", "evidence": "Survey"}],
        "threats": [{"point": "Globex bundles for free", "evidence": "Pricing page, 2025-02"}],
        "implications": ["Build a partner channel"],
    },
    "evidence_table": {
        "summary": "412 records screened, 2 included.",
        "studies": [
            {
                "citation": "Smith et al., Remote work and output, J. Econ. 2021",
                "year": 2021,
                "design": "natural experiment",
                "sample": "16,000 call-centre staff",
                "key_findings": "Output +13%",
                "quality": "high",
                "quality_note": "Randomised assignment",
            }
        ],
        "excluded": [{"citation": "Doe 2020 (blog)", "reason": "Not peer reviewed"}],
    },
    "fact_check": {
        "summary": "One claim needs a correction.",
        "claims": [
            {
                "claim": "Half of all firms are remote-first",
                "location": "Section 2, paragraph 1",
                "verdict": "contradicted",
                "evidence": "Survey reports 16%",
                "source": "Owl Labs 2024",
                "correction": "About one in six firms are remote-first",
            }
        ],
    },
    "article_draft": {
        "title": "The office is not dead",
        "standfirst": "What the evidence on remote work really shows.",
        "audience": "Managers; plain and direct",
        "sections": [{"heading": "The numbers", "body": "Output rose 13% in one study."}],
        "sources": ["Smith et al. 2021"],
    },
    "deliverable": {
        "title": "Patent report",
        "summary": "File a PCT application.",
        "sections": [{"heading": "Findings", "body": "Three references were charted."}],
    },
    "quality_report": {
        "items": [
            {"item": "Claims follow structure", "passed": True, "evidence": "Section 3"},
            {"item": "Dates cited", "passed": False, "evidence": "D2 has no date"},
        ]
    },
}


def test_the_brief_output_types_are_known() -> None:
    assert {
        "research_notes",
        "analysis_document",
        "structured_document",
        "deliverable",
        "quality_report",
    } <= KNOWN_OUTPUT_TYPES


def test_every_known_type_has_a_sample_here() -> None:
    assert set(SAMPLES) == KNOWN_OUTPUT_TYPES


@pytest.mark.parametrize("output_type", sorted(KNOWN_OUTPUT_TYPES))
def test_schema_is_a_valid_draft_2020_12_schema(output_type: str) -> None:
    schema = schema_for(output_type)

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("output_type", sorted(KNOWN_OUTPUT_TYPES))
def test_every_object_is_closed_and_requires_all_its_properties(output_type: str) -> None:
    def objects(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            own = [node] if node.get("type") == "object" else []
            return own + [o for value in node.values() for o in objects(value)]
        if isinstance(node, list):
            return [o for value in node for o in objects(value)]
        return []

    for obj in objects(schema_for(output_type)):
        assert obj["additionalProperties"] is False
        assert sorted(obj["required"]) == sorted(obj["properties"])


@pytest.mark.parametrize("output_type", sorted(KNOWN_OUTPUT_TYPES))
def test_sample_instance_validates(output_type: str) -> None:
    Draft202012Validator(schema_for(output_type)).validate(SAMPLES[output_type])


def test_research_notes_without_findings_are_invalid() -> None:
    content = {**SAMPLES["research_notes"], "findings": []}

    with pytest.raises(jsonschema.ValidationError, match="should be non-empty"):
        Draft202012Validator(schema_for("research_notes")).validate(content)


def test_a_finding_without_a_source_is_invalid() -> None:
    content = {
        **SAMPLES["research_notes"],
        "findings": [{"claim": "x", "evidence": "y"}],
    }

    with pytest.raises(jsonschema.ValidationError, match="'source' is a required property"):
        Draft202012Validator(schema_for("research_notes")).validate(content)


def test_an_unexpected_field_is_invalid() -> None:
    content = {**SAMPLES["quality_report"], "score": 10}

    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        Draft202012Validator(schema_for("quality_report")).validate(content)


def test_quality_report_passed_must_be_a_boolean() -> None:
    content = {"items": [{"item": "x", "passed": "yes", "evidence": "y"}]}

    with pytest.raises(jsonschema.ValidationError, match="is not of type 'boolean'"):
        Draft202012Validator(schema_for("quality_report")).validate(content)


def test_schema_for_returns_a_fresh_dict_each_time() -> None:
    first = schema_for("deliverable")
    first["properties"]["title"]["type"] = "integer"

    assert schema_for("deliverable")["properties"]["title"]["type"] == "string"


def test_schema_for_an_unknown_type_lists_the_known_ones() -> None:
    with pytest.raises(NotFound, match=r"unknown output type 'poem'.*research_notes"):
        schema_for("poem")


def test_render_of_an_unknown_type_is_not_found() -> None:
    with pytest.raises(NotFound, match="unknown output type 'poem'"):
        render_markdown("poem", {})


# One piece of each sample that its markdown must show.
SHOWN = {
    "research_notes": "Are there Chinese utility models?",
    "analysis_document": "F3 is novel (confidence: medium; basis: D1-D3)",
    "structured_document": "**1.** A method of cleaning a panel, comprising…",
    "market_sizing": "- Flexitarian owners",
    "comparison_table": "| Price | high — €4/kg | low — x |",
    "recommendation": "1. Run 20 interviews (PM, 2 weeks)",
    "risk_register": "| Single maintainer of billing | people | critical | medium |",
    "timeline": "| 2025-03-04T14:09Z | detection | Checkout error-rate alert fired | PagerDuty |",
    "action_plan": "| Stage config rollouts by region | Platform team | high | 2025-04-01 |",
    "requirements": "**US1** (must) As an admin, I want to export 90 days of audit logs as CSV",
    "swot": "- Globex bundles for free — Pricing page, 2025-02",
    "evidence_table": "| Smith et al., Remote work and output, J. Econ. 2021 | 2021 |",
    "fact_check": "| contradicted | Survey reports 16% |",
    "article_draft": "_What the evidence on remote work really shows._",
    "deliverable": "Three references were charted.",
    "quality_report": "- [x] **Claims follow structure** — Section 3",
}


@pytest.mark.parametrize("output_type", sorted(KNOWN_OUTPUT_TYPES))
def test_render_starts_with_a_heading_and_shows_the_content(output_type: str) -> None:
    text = render_markdown(output_type, SAMPLES[output_type])

    assert text.startswith("# ")
    assert SHOWN[output_type] in text


def test_render_uses_the_title_at_the_requested_level() -> None:
    text = render_markdown("deliverable", SAMPLES["deliverable"], level=2)

    assert text.splitlines()[0] == "## Patent report"
    assert "### Findings" in text


def test_render_research_notes_lists_findings_with_sources() -> None:
    text = render_markdown("research_notes", SAMPLES["research_notes"])

    assert "## Findings" in text
    assert (
        "1. **US 9,876,543 B2 discloses a self-cleaning panel coating** — col. 3, l. 12-30 "
        "_(source: US 9,876,543 B2 (2018-01-23))_"
    ) in text


def test_render_comparison_table_puts_options_in_columns_and_escapes_pipes() -> None:
    text = render_markdown("comparison_table", SAMPLES["comparison_table"])

    assert "| criterion | Acme \\| Co | Globex |" in text
    assert "| Taste | good | — |" in text


def test_render_market_sizing_formats_amounts_with_currency() -> None:
    text = render_markdown("market_sizing", SAMPLES["market_sizing"])

    assert "| bottom_up | 1,200,000,000 EUR | 300,000,000 EUR | 15,000,000 EUR |" in text


def test_render_quality_report_counts_passes_and_marks_each_item() -> None:
    text = render_markdown("quality_report", SAMPLES["quality_report"])

    assert "1 of 2 checks passed." in text
    assert "- [ ] **Dates cited** — D2 has no date" in text


def test_render_tolerates_partial_content() -> None:
    text = render_markdown("recommendation", {"recommendation": "Do it", "rationale": "oops"})

    assert text == "# Recommendation\n\n**Recommendation:** Do it\n\n**Confidence:** ?\n"
