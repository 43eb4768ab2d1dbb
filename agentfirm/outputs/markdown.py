"""Markdown views of output-type artifacts: what a human reads in the draft and the deliverable.

Renderers are forgiving: content that does not fully match its schema still renders, with the
missing parts left out, so a partial or repaired artifact can still be reviewed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any


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


def _table(keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """A markdown table of ``rows`` with one column per key; no lines when there are no rows."""
    if not rows:
        return []
    lines = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(k, "")) for k in keys) + " |" for r in rows]
    return lines


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
    keys = ("title", "category", "severity", "likelihood", "evidence", "mitigation", "effort")
    doc.block(_table(keys, _dicts(c, "risks")))


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


def _render_timeline(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    doc.text(f"Times in {c['timezone']}." if c.get("timezone") else "")
    doc.block(_table(("time", "phase", "event", "source"), _dicts(c, "events")))
    doc.section("Gaps in the evidence", _bullets(_strings(c, "gaps")))


def _render_action_plan(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    keys = ("action", "owner", "priority", "due", "addresses", "done_when")
    doc.block(_table(keys, _dicts(c, "actions")))


def _render_requirements(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    doc.section("Goals", _bullets(_strings(c, "goals")))
    doc.section("Non-goals", _bullets(_strings(c, "non_goals")))
    stories = _dicts(c, "user_stories")
    if stories:
        doc.heading("User stories", 1)
    for s in stories:
        doc.block(
            [
                f"**{s.get('id', '')}** ({s.get('priority', '?')}) As {s.get('as_a', '')}, "
                f"I want {s.get('i_want', '')}, so that {s.get('so_that', '')}.",
                *_bullets(_strings(s, "acceptance_criteria")),
            ]
        )
    quality = _table(("category", "requirement", "measure"), _dicts(c, "non_functional"))
    doc.section("Non-functional requirements", quality)
    doc.section("Open questions", _bullets(_strings(c, "open_questions")))


def _render_swot(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    for key in ("strengths", "weaknesses", "opportunities", "threats"):
        points = [f"- {p.get('point', '')} — {p.get('evidence', '')}" for p in _dicts(c, key)]
        doc.section(key.capitalize(), points)
    doc.section("Implications", _bullets(_strings(c, "implications")))


def _render_evidence_table(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    keys = ("citation", "year", "design", "sample", "key_findings", "quality", "quality_note")
    doc.section("Included studies", _table(keys, _dicts(c, "studies")))
    excluded = [f"- {x.get('citation', '')} — {x.get('reason', '')}" for x in _dicts(c, "excluded")]
    doc.section("Excluded at full text", excluded)


def _render_fact_check(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(c.get("summary"))
    keys = ("claim", "location", "verdict", "evidence", "source", "correction")
    doc.block(_table(keys, _dicts(c, "claims")))


def _render_article_draft(doc: _Doc, c: Mapping[str, Any]) -> None:
    doc.text(f"_{c['standfirst']}_" if c.get("standfirst") else "")
    doc.text(f"Audience: {c['audience']}" if c.get("audience") else "")
    for section in _dicts(c, "sections"):
        doc.heading(str(section.get("heading", "")), 1)
        doc.text(section.get("body"))
    doc.section("Sources", _bullets(_strings(c, "sources")))


Renderer = Callable[[_Doc, Mapping[str, Any]], None]

RENDERERS: Mapping[str, tuple[str, Renderer]] = MappingProxyType(
    {
        "research_notes": ("Research notes", _render_research_notes),
        "analysis_document": ("Analysis", _render_analysis_document),
        "structured_document": ("Document", _render_structured_document),
        "market_sizing": ("Market sizing", _render_market_sizing),
        "comparison_table": ("Comparison", _render_comparison_table),
        "recommendation": ("Recommendation", _render_recommendation),
        "risk_register": ("Risk register", _render_risk_register),
        "timeline": ("Timeline", _render_timeline),
        "action_plan": ("Action plan", _render_action_plan),
        "requirements": ("Requirements", _render_requirements),
        "swot": ("SWOT analysis", _render_swot),
        "evidence_table": ("Evidence table", _render_evidence_table),
        "fact_check": ("Fact check", _render_fact_check),
        "article_draft": ("Article draft", _render_article_draft),
        "deliverable": ("Deliverable", _render_deliverable),
        "quality_report": ("Quality report", _render_quality_report),
    }
)
"""Heading used when the content has no title, and the renderer, by output type name."""


def render(output_type: str, content: Mapping[str, Any], *, level: int) -> str | None:
    """Markdown of ``content``: one heading at ``level`` (the content's title, else the type's
    label) with its parts one level below; None for a type without a renderer."""
    entry = RENDERERS.get(output_type)
    if entry is None:
        return None
    label, renderer = entry
    doc = _Doc(max(1, min(level, 5)))
    doc.heading(str(content.get("title") or label))
    renderer(doc, content)
    return doc.render()
