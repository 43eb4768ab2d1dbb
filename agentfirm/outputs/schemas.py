"""The JSON schemas (Draft 2020-12) of the output types, one builder per type.

Every object is closed (``additionalProperties: false``) and lists all its properties as
``required`` — no optional fields, so provider strict modes accept the schemas and an artifact is
either complete or invalid. Keywords are kept to the subset every provider's structured-output
mode understands (type, properties, required, items, minItems, enum, minimum).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

Schema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_LEVELS = ("low", "medium", "high")


def _text(description: str) -> Schema:
    return {"type": "string", "description": description}


def _enum(description: str, values: Sequence[str]) -> Schema:
    return {"type": "string", "enum": list(values), "description": description}


def _list(items: Schema, description: str, *, min_items: int = 0) -> Schema:
    schema: Schema = {"type": "array", "items": items, "description": description}
    if min_items:
        schema["minItems"] = min_items
    return schema


def _object(properties: Mapping[str, Schema], description: str = "") -> Schema:
    schema: Schema = {
        "type": "object",
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _sections(body: Schema) -> Schema:
    return _list(
        _object({"heading": _text("Section heading."), "body": body}),
        "The sections, in reading order.",
        min_items=1,
    )


def _research_notes() -> Schema:
    finding = _object(
        {
            "claim": _text("One factual statement, specific enough to check."),
            "evidence": _text("What supports the claim: a quotation, figure or observation."),
            "source": _text("Where it comes from: publication number, URL, document and page."),
        }
    )
    return _object(
        {
            "summary": _text("The main points in a short paragraph."),
            "findings": _list(finding, "Findings, most important first.", min_items=1),
            "open_questions": _list(_text("A question"), "What could not be established."),
        },
        "Sourced research findings.",
    )


def _analysis_document() -> Schema:
    conclusion = _object(
        {
            "conclusion": _text("One conclusion of the analysis."),
            "confidence": _enum("How well the evidence supports it.", _LEVELS),
            "basis": _text("The findings or sections it rests on."),
        }
    )
    return _object(
        {
            "title": _text("Title of the analysis."),
            "summary": _text("The answer first, in a short paragraph."),
            "sections": _sections(_text("The reasoning, with the evidence it uses.")),
            "conclusions": _list(conclusion, "Conclusions drawn.", min_items=1),
            "open_questions": _list(_text("A question"), "What remains uncertain."),
        },
        "A reasoned analysis with explicit conclusions.",
    )


def _structured_document() -> Schema:
    item = _object(
        {
            "label": _text("The item's number or short label, e.g. '1' or 'Claim 3'."),
            "text": _text("The item's full text."),
        }
    )
    section = _object(
        {
            "heading": _text("Section heading."),
            "items": _list(item, "Numbered or labelled items.", min_items=1),
        }
    )
    return _object(
        {
            "title": _text("Document title."),
            "summary": _text("What the document contains and how to use it."),
            "sections": _list(section, "Sections of labelled items.", min_items=1),
            "notes": _list(_text("A note"), "Drafting notes, caveats, alternatives."),
        },
        "A document made of labelled items, such as patent claims or a specification.",
    )


def _market_sizing() -> Schema:
    amount = {"type": "number", "minimum": 0}
    estimate = _object(
        {
            "approach": _enum("How the figure was built.", ("top_down", "bottom_up")),
            "tam": {**amount, "description": "Total addressable market per year."},
            "sam": {**amount, "description": "Serviceable addressable market per year."},
            "som": {**amount, "description": "Serviceable obtainable market per year."},
            "calculation": _text("The arithmetic, step by step, with its inputs."),
        }
    )
    assumption = _object(
        {"assumption": _text("An input to the sizing."), "rationale": _text("Why it holds.")}
    )
    growth = _object(
        {
            "cagr_pct": {"type": "number", "description": "Compound annual growth, in percent."},
            "horizon_years": {"type": "integer", "minimum": 1, "description": "Years covered."},
            "drivers": _list(_text("A driver"), "What drives the growth."),
        }
    )
    return _object(
        {
            "summary": _text("The headline figures and what they mean."),
            "market_definition": _text("Which product, customers and use the market covers."),
            "geography": _text("The geography the figures cover."),
            "currency": _text("ISO 4217 code of every amount, e.g. USD."),
            "base_year": {"type": "integer", "minimum": 1900, "description": "Year of figures."},
            "estimates": _list(estimate, "One estimate per approach.", min_items=1),
            "growth": growth,
            "assumptions": _list(assumption, "Every assumption used.", min_items=1),
            "sources": _list(_text("A source"), "Sources of the inputs."),
        },
        "A market size estimate (TAM/SAM/SOM) with its workings.",
    )


def _comparison_table() -> Schema:
    rating = _object(
        {
            "criterion": _text("One of the criteria, spelt exactly as listed."),
            "rating": _text("Short verdict, e.g. 'strong', '4/5', 'disclosed'."),
            "note": _text("Why, with the evidence or citation."),
        }
    )
    option = _object(
        {
            "name": _text("The option, competitor or reference compared."),
            "ratings": _list(rating, "One rating per criterion.", min_items=1),
        }
    )
    return _object(
        {
            "title": _text("What is compared."),
            "criteria": _list(_text("A criterion"), "Criteria, in order.", min_items=1),
            "options": _list(option, "Options compared.", min_items=2),
            "takeaways": _list(_text("A takeaway"), "What the comparison shows."),
        },
        "Options compared on the same criteria.",
    )


def _recommendation() -> Schema:
    considered = _object({"option": _text("An option."), "assessment": _text("Its merits.")})
    risk = _object({"risk": _text("A risk."), "mitigation": _text("How to reduce it.")})
    step = _object(
        {
            "action": _text("A concrete action."),
            "owner": _text("Who should do it (a role)."),
            "timing": _text("When, e.g. 'within 2 weeks'."),
        }
    )
    return _object(
        {
            "summary": _text("The recommendation and its main reason, in two sentences."),
            "recommendation": _text("What to do, stated plainly."),
            "confidence": _enum("Confidence in the recommendation.", _LEVELS),
            "rationale": _list(_text("A reason"), "Why, tied to evidence.", min_items=1),
            "options_considered": _list(considered, "Alternatives weighed."),
            "risks": _list(risk, "Risks of following the recommendation."),
            "next_steps": _list(step, "What happens next.", min_items=1),
        },
        "A decision recommendation with rationale and next steps.",
    )


def _risk_register() -> Schema:
    risk = _object(
        {
            "title": _text("The risk in a few words."),
            "category": _text("Area, e.g. security, scalability, people, compliance."),
            "severity": _enum("Impact if it happens.", ("low", "medium", "high", "critical")),
            "likelihood": _enum("How likely it is.", _LEVELS),
            "evidence": _text("What shows the risk exists."),
            "mitigation": _text("What would reduce or remove it."),
            "effort": _text("Effort to mitigate, e.g. '3 engineer-weeks'."),
        }
    )
    return _object(
        {
            "summary": _text("The overall risk picture."),
            "risks": _list(risk, "Risks, most severe first.", min_items=1),
        },
        "Risks with severity, likelihood, evidence and mitigation.",
    )


def _deliverable() -> Schema:
    return _object(
        {
            "title": _text("Title of the deliverable."),
            "summary": _text("Executive summary."),
            "sections": _sections(_text("Section text, in markdown.")),
        },
        "The stitched final deliverable.",
    )


def _quality_report() -> Schema:
    item = _object(
        {
            "item": _text("The checklist item, verbatim."),
            "passed": {"type": "boolean", "description": "Whether the deliverable meets it."},
            "evidence": _text("Where in the deliverable it is (or is not) met."),
        }
    )
    return _object(
        {"items": _list(item, "One entry per checklist item.", min_items=1)},
        "Each quality checklist item judged pass/fail with evidence.",
    )


def _timeline() -> Schema:
    phases = ("trigger", "detection", "response", "mitigation", "resolution", "follow_up")
    event = _object(
        {
            "time": _text("When, ISO 8601 with offset where known, e.g. 2025-03-04T14:02Z."),
            "phase": _enum("Where the event sits in the incident.", phases),
            "event": _text("What happened or was done, by which system or role."),
            "source": _text("Where this is recorded: log, alert, chat, deploy record."),
        }
    )
    return _object(
        {
            "summary": _text("The incident in three sentences: start, turning point, end."),
            "timezone": _text("The timezone every time is given in, e.g. UTC."),
            "events": _list(event, "Events in time order.", min_items=1),
            "gaps": _list(_text("A gap"), "Periods or facts the evidence does not cover."),
        },
        "A sourced, time-ordered sequence of events.",
    )


def _action_plan() -> Schema:
    action = _object(
        {
            "action": _text("A concrete, checkable action."),
            "owner": _text("Who owns it (a role or team, not a person to blame)."),
            "priority": _enum("How soon it matters.", ("high", "medium", "low")),
            "due": _text("When, e.g. a date or 'within 2 weeks'."),
            "addresses": _text("The cause, finding or requirement it addresses."),
            "done_when": _text("How anyone can tell it is done."),
        }
    )
    return _object(
        {
            "summary": _text("What the plan achieves and its order of work."),
            "actions": _list(action, "Actions, highest priority first.", min_items=1),
        },
        "Owned, prioritised actions with due dates and completion criteria.",
    )


def _requirements() -> Schema:
    story = _object(
        {
            "id": _text("A short label, e.g. US1."),
            "as_a": _text("The user role."),
            "i_want": _text("What they want to do."),
            "so_that": _text("The outcome they need."),
            "priority": _enum("MoSCoW priority.", ("must", "should", "could")),
            "acceptance_criteria": _list(
                _text("A testable criterion, e.g. Given/When/Then."),
                "How to tell the story is done.",
                min_items=1,
            ),
        }
    )
    quality = _object(
        {
            "category": _text("E.g. performance, security, privacy, accessibility."),
            "requirement": _text("The requirement."),
            "measure": _text("The measurable target, e.g. 'p95 < 200 ms at 500 rps'."),
        }
    )
    return _object(
        {
            "summary": _text("The problem and who has it, in a short paragraph."),
            "goals": _list(_text("A goal"), "What success looks like.", min_items=1),
            "non_goals": _list(_text("A non-goal"), "What is deliberately out of scope."),
            "user_stories": _list(story, "User stories, must-haves first.", min_items=1),
            "non_functional": _list(quality, "Non-functional requirements."),
            "open_questions": _list(_text("A question"), "Decisions still needed."),
        },
        "Requirements: goals, user stories with acceptance criteria, quality targets.",
    )


def _swot() -> Schema:
    def points(description: str) -> Schema:
        point = _object({"point": _text("The point."), "evidence": _text("What shows it.")})
        return _list(point, description, min_items=1)

    return _object(
        {
            "title": _text("Whose position is analysed, against whom."),
            "summary": _text("The position in two sentences."),
            "strengths": points("Internal advantages."),
            "weaknesses": points("Internal disadvantages."),
            "opportunities": points("External openings."),
            "threats": points("External dangers."),
            "implications": _list(_text("An implication"), "What follows for strategy."),
        },
        "Strengths, weaknesses, opportunities and threats, each with evidence.",
    )


def _evidence_table() -> Schema:
    study = _object(
        {
            "citation": _text("Authors, title, venue, year; DOI or URL where there is one."),
            "year": {"type": "integer", "minimum": 1500, "description": "Year of publication."},
            "design": _text("Study design, e.g. RCT, cohort, survey, benchmark, case study."),
            "sample": _text("Population, sample size or dataset."),
            "key_findings": _text("What it found that bears on the question, with effect sizes."),
            "quality": _enum("Strength of the study's evidence.", _LEVELS),
            "quality_note": _text("Why that quality rating: bias, size, method."),
        }
    )
    excluded = _object({"citation": _text("The record."), "reason": _text("Why excluded.")})
    return _object(
        {
            "summary": _text("How many records were screened and included, and the headline."),
            "studies": _list(study, "Included studies, one row each.", min_items=1),
            "excluded": _list(excluded, "Notable records excluded at full text, with reasons."),
        },
        "Data extracted from each included study, with a quality rating.",
    )


def _fact_check() -> Schema:
    verdicts = ("supported", "partly_supported", "unsupported", "contradicted", "unverifiable")
    claim = _object(
        {
            "claim": _text("The claim, quoted from the text."),
            "location": _text("Where it is: section and paragraph."),
            "verdict": _enum("What the evidence says about the claim.", verdicts),
            "evidence": _text("What was checked and what it shows."),
            "source": _text("The source checked against."),
            "correction": _text("The corrected wording, or '' when none is needed."),
        }
    )
    return _object(
        {
            "summary": _text("How many claims were checked and what must change."),
            "claims": _list(claim, "Every checkable claim, in text order.", min_items=1),
        },
        "Each factual claim of a text checked against a source, with corrections.",
    )


def _article_draft() -> Schema:
    return _object(
        {
            "title": _text("The headline."),
            "standfirst": _text("One or two sentences under the headline: the promise."),
            "audience": _text("Who it is written for, and the tone used."),
            "sections": _sections(_text("The section's prose, in markdown.")),
            "sources": _list(_text("A source"), "Sources cited in the text."),
        },
        "A publishable article draft.",
    )


BUILDERS: Mapping[str, Callable[[], Schema]] = MappingProxyType(
    {
        "research_notes": _research_notes,
        "analysis_document": _analysis_document,
        "structured_document": _structured_document,
        "market_sizing": _market_sizing,
        "comparison_table": _comparison_table,
        "recommendation": _recommendation,
        "risk_register": _risk_register,
        "timeline": _timeline,
        "action_plan": _action_plan,
        "requirements": _requirements,
        "swot": _swot,
        "evidence_table": _evidence_table,
        "fact_check": _fact_check,
        "article_draft": _article_draft,
        "deliverable": _deliverable,
        "quality_report": _quality_report,
    }
)
"""Schema builder by output type name; each call returns a fresh dict."""
