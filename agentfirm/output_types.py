"""Output types: the JSON schemas (Draft 2020-12) that sub-agents fill, and their markdown views.

A persona module names an ``output_type``; its sub-agent is given ``schema_for(output_type)`` and
the artifact is validated against it. Every object is closed (``additionalProperties: false``)
and lists all its properties as ``required`` — no optional fields, so provider strict modes accept
the schemas and an artifact is either complete or invalid. Keywords are kept to the subset every
provider's structured-output mode understands (type, properties, required, items, minItems, enum,
minimum).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from agentfirm.errors import NotFound

Schema = dict[str, Any]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"
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


_BUILDERS: Mapping[str, Callable[[], Schema]] = MappingProxyType(
    {
        "research_notes": _research_notes,
        "analysis_document": _analysis_document,
        "structured_document": _structured_document,
        "market_sizing": _market_sizing,
        "comparison_table": _comparison_table,
        "recommendation": _recommendation,
        "risk_register": _risk_register,
        "deliverable": _deliverable,
        "quality_report": _quality_report,
    }
)

KNOWN_OUTPUT_TYPES: frozenset[str] = frozenset(_BUILDERS)


def schema_for(output_type: str) -> dict[str, Any]:
    """The Draft 2020-12 JSON schema of ``output_type``: a fresh dict the caller may change.

    Raises ``NotFound`` for an unknown type."""
    builder = _BUILDERS.get(output_type)
    if builder is None:
        raise _unknown(output_type)
    return {"$schema": _DRAFT, "title": output_type, **builder()}


def _unknown(output_type: str) -> NotFound:
    return NotFound(
        f"unknown output type '{output_type}'",
        hint="use one of: " + ", ".join(sorted(KNOWN_OUTPUT_TYPES)),
    )


# ---------------------------------------------------------------------------- markdown


def _cell(value: Any) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def _bullets(items: Sequence[Any]) -> list[str]:
    return [f"- {item}" for item in items]


def _dicts(content: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    """The list under ``key``, keeping only mapping entries (renders partial content too)."""
    value = content.get(key)
    if not isinstance(value, list):
        return []
    return [entry for entry in value if isinstance(entry, Mapping)]


def _strings(content: Mapping[str, Any], key: str) -> list[str]:
    value = content.get(key)
    return [str(entry) for entry in value] if isinstance(value, list) else []


class _Doc:
    """Markdown under construction, with headings relative to a base level."""

    def __init__(self, level: int) -> None:
        self.level = level
        self.lines: list[str] = []

    def heading(self, text: str, depth: int = 0) -> None:
        self.block([f"{'#' * (self.level + depth)} {text}"])

    def block(self, lines: Sequence[str]) -> None:
        if lines:
            if self.lines:
                self.lines.append("")
            self.lines.extend(lines)

    def section(self, title: str, lines: Sequence[str]) -> None:
        if lines:
            self.heading(title, 1)
            self.block(lines)

    def text(self, value: Any) -> None:
        if value:
            self.block([str(value)])

    def render(self) -> str:
        return "\n".join(self.lines) + "\n"


def _render_research_notes(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    findings = [
        f"{n}. **{f.get('claim', '')}** — {f.get('evidence', '')} _(source: {f.get('source', '')})_"
        for n, f in enumerate(_dicts(c, "findings"), start=1)
    ]
    doc.section("Findings", findings)
    doc.section("Open questions", _bullets(_strings(c, "open_questions")))


def _render_analysis_document(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    for section in _dicts(c, "sections"):
        doc.heading(str(section.get("heading", "")), 1)
        doc.text(section.get("body"))
    conclusions = [
        f"- {x.get('conclusion', '')} (confidence: {x.get('confidence', '?')}; "
        f"basis: {x.get('basis', '')})"
        for x in _dicts(c, "conclusions")
    ]
    doc.section("Conclusions", conclusions)
    doc.section("Open questions", _bullets(_strings(c, "open_questions")))


def _render_structured_document(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    for section in _dicts(c, "sections"):
        items = [f"**{i.get('label', '')}.** {i.get('text', '')}" for i in _dicts(section, "items")]
        doc.heading(str(section.get("heading", "")), 1)
        for item in items:
            doc.block([item])
    doc.section("Notes", _bullets(_strings(c, "notes")))


def _render_market_sizing(doc: _Doc, c: Mapping[str, Any]) -> None:
    currency = c.get("currency", "")
    doc.text(c.get("summary"))
    doc.block(
        [
            f"- **Market:** {c.get('market_definition', '')}",
            f"- **Geography:** {c.get('geography', '')}",
            f"- **Currency / base year:** {currency} / {c.get('base_year', '')}",
        ]
    )
    rows = ["| approach | TAM | SAM | SOM |", "|---|---:|---:|---:|"]
    estimates = _dicts(c, "estimates")
    for e in estimates:
        amounts = (_amount(e.get(key), currency) for key in ("tam", "sam", "som"))
        rows.append(f"| {_cell(e.get('approach', ''))} | " + " | ".join(amounts) + " |")
    doc.section("Estimates", rows if estimates else [])
    for e in estimates:
        doc.block([f"_{e.get('approach', '')}:_ {e.get('calculation', '')}"])
    growth = c.get("growth")
    if isinstance(growth, Mapping):
        rate = (
            f"{growth.get('cagr_pct', '?')}% a year over {growth.get('horizon_years', '?')} years"
        )
        doc.section("Growth", [rate])
        doc.block(_bullets(_strings(growth, "drivers")))
    assumptions = [
        f"- {a.get('assumption', '')} — {a.get('rationale', '')}" for a in _dicts(c, "assumptions")
    ]
    doc.section("Assumptions", assumptions)
    doc.section("Sources", _bullets(_strings(c, "sources")))


def _amount(value: Any, currency: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,.0f} {currency}".strip()
    return _cell(value if value is not None else "")


def _render_comparison_table(doc: _Doc, c: Mapping[str, Any]) -> None:
    options = _dicts(c, "options")
    criteria = _strings(c, "criteria")
    if options and criteria:
        header = "| criterion | " + " | ".join(_cell(o.get("name", "")) for o in options) + " |"
        rows = [header, "|---" * (len(options) + 1) + "|"]
        for criterion in criteria:
            cells = [_rating(o, criterion) for o in options]
            rows.append(f"| {_cell(criterion)} | " + " | ".join(cells) + " |")
        doc.block(rows)
    doc.section("Takeaways", _bullets(_strings(c, "takeaways")))


def _rating(option: Mapping[str, Any], criterion: str) -> str:
    for r in _dicts(option, "ratings"):
        if r.get("criterion") == criterion:
            note = r.get("note")
            return _cell(f"{r.get('rating', '')} — {note}" if note else r.get("rating", ""))
    return "—"


def _render_recommendation(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    doc.block([f"**Recommendation:** {c.get('recommendation', '')}"])
    doc.block([f"**Confidence:** {c.get('confidence', '?')}"])
    doc.section("Rationale", _bullets(_strings(c, "rationale")))
    considered = [
        f"- **{o.get('option', '')}** — {o.get('assessment', '')}"
        for o in _dicts(c, "options_considered")
    ]
    doc.section("Options considered", considered)
    risks = [
        f"- {r.get('risk', '')} — mitigation: {r.get('mitigation', '')}" for r in _dicts(c, "risks")
    ]
    doc.section("Risks", risks)
    steps = [
        f"{n}. {s.get('action', '')} ({s.get('owner', '')}, {s.get('timing', '')})"
        for n, s in enumerate(_dicts(c, "next_steps"), start=1)
    ]
    doc.section("Next steps", steps)


def _render_risk_register(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    risks = _dicts(c, "risks")
    keys = ("title", "category", "severity", "likelihood", "evidence", "mitigation", "effort")
    rows = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    rows += ["| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |" for r in risks]
    doc.block(rows if risks else [])


def _render_deliverable(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    for section in _dicts(c, "sections"):
        doc.heading(str(section.get("heading", "")), 1)
        doc.text(section.get("body"))


def _render_quality_report(doc: _Doc, c: Mapping[str, Any]) -> None:
    items = _dicts(c, "items")
    passed = sum(1 for i in items if i.get("passed") is True)
    doc.text(f"{passed} of {len(items)} checks passed.")
    doc.block(
        [
            f"- [{'x' if i.get('passed') is True else ' '}] **{i.get('item', '')}** — "
            f"{i.get('evidence', '')}"
            for i in items
        ]
    )


_Renderer = Callable[[_Doc, Mapping[str, Any]], None]

_RENDERERS: Mapping[str, tuple[str, _Renderer]] = MappingProxyType(
    {
        "research_notes": ("Research notes", _render_research_notes),
        "analysis_document": ("Analysis", _render_analysis_document),
        "structured_document": ("Document", _render_structured_document),
        "market_sizing": ("Market sizing", _render_market_sizing),
        "comparison_table": ("Comparison", _render_comparison_table),
        "recommendation": ("Recommendation", _render_recommendation),
        "risk_register": ("Risk register", _render_risk_register),
        "deliverable": ("Deliverable", _render_deliverable),
        "quality_report": ("Quality report", _render_quality_report),
    }
)


def render_markdown(output_type: str, content: Mapping[str, Any], *, level: int = 1) -> str:
    """Readable markdown for an artifact of ``output_type``.

    Starts with one heading at ``level`` (the content's ``title``, else the type's name); its
    parts are one level below, so a caller nesting module outputs passes ``level=2``. Content that
    does not fully match the schema still renders: missing parts are left out. Raises ``NotFound``
    for an unknown type."""
    entry = _RENDERERS.get(output_type)
    if entry is None:
        raise _unknown(output_type)
    label, renderer = entry
    doc = _Doc(max(1, min(level, 5)))
    doc.heading(str(content.get("title") or label))
    renderer(doc, content)
    return doc.render()
