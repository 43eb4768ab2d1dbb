"""Planning: adapt a persona's template to one request (ARCHITECTURE.md §3).

A reasoning-tier call returns a module list (``plan_schema``) that may add, drop and rewire the
template's modules. It is validated (``plan_problems``, then ``coverage_problems``: a template
module that covers a quality checklist item stays, or the plan lists the item under
``uncovered`` with why); an invalid plan gets ONE retry with the problems appended, and if that
is invalid too the template is used as it is — the reason is logged and returned, never hidden.
The plan is only ever data: nothing runs until it is approved, and ``--yes`` refuses a plan that
leaves checklist items uncovered (``decisions.uncovered_refusal``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from pydantic import ValidationError

from agentfirm.domain.calls import MAX_TOKENS, PLAN_ID
from agentfirm.domain.models import TIERS, ModuleSpec, Plan, UncoveredItem
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.outputs.types import KNOWN_OUTPUT_TYPES, describe_output_type
from agentfirm.personas.library import Persona
from agentfirm.personas.model import ID_PATTERN, check_modules, module_waves
from agentfirm.router.base import CallResult, Message, RouterLike, structured_output

log = structlog.get_logger(__name__)

MAX_MODULES = 12
"""More modules than this is refused: each is a paid call, and a plan that long is a sign the
model split the work too finely."""

"""``module_id`` of the planning calls on the ledger."""

_TIER_USE = {
    "reasoning": "judgement and synthesis: analysis, recommendations, work others build on",
    "execution": "research, extraction, drafting from clear instructions",
    "utility": "cheap mechanical work: formatting, listing, simple extraction",
}
_MODULE_FIELDS = ("id", "title", "brief", "tier", "depends_on", "output_type")
_ID = re.compile(ID_PATTERN)
_RETRY_PROBLEMS = 20  # enough to fix a plan; a garbage reply's hundred problems are noise


@dataclass(frozen=True)
class PlanOutcome:
    """The plan to put to the human, where it came from and why. ``attempts`` counts the
    planning calls made (0 when none was)."""

    plan: Plan
    source: Literal["llm", "template"]
    reason: str
    attempts: int


def plan_schema() -> dict[str, Any]:
    """The planner's output schema (strict-mode friendly: closed objects, all required)."""
    module = {
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": ID_PATTERN, "description": "snake_case id."},
            "title": {"type": "string", "description": "A short title."},
            "brief": {"type": "string", "description": "The sub-agent's scoped instructions."},
            "tier": {"type": "string", "enum": list(TIERS)},
            "depends_on": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Ids of modules in this plan whose outputs this one needs.",
            },
            "output_type": {"type": "string", "enum": sorted(KNOWN_OUTPUT_TYPES)},
        },
        "required": list(_MODULE_FIELDS),
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "rationale": {
                "type": "string",
                "description": "What you changed from the template and why, in two sentences.",
            },
            "modules": {"type": "array", "items": module, "minItems": 1},
            "uncovered": {
                "type": "array",
                "description": "Checklist items no module of your plan covers any more (you "
                "dropped every template module covering them), each with why; usually empty.",
                "items": {
                    "type": "object",
                    "properties": {
                        "item": {"type": "integer", "description": "The item's number."},
                        "why": {"type": "string", "description": "Why the plan drops it."},
                    },
                    "required": ["item", "why"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["rationale", "modules", "uncovered"],
        "additionalProperties": False,
    }


# ---------------------------------------------------------------------------- validation


def plan_problems(data: Mapping[str, Any]) -> tuple[list[ModuleSpec], list[str]]:
    """The modules of a planner reply and its problems (empty when it is a valid plan), each a
    ``what — how to fix`` line meant for the model's retry as much as for the log."""
    raw = data.get("modules")
    if not isinstance(raw, list) or not raw:
        return [], ["the plan has no modules — return at least one module"]
    modules: list[ModuleSpec] = []
    problems: list[str] = []
    for index, entry in enumerate(raw):
        module, entry_problems = _module(index, entry)
        problems += entry_problems
        if module is not None:
            modules.append(module)
    if problems:
        return modules, problems
    return modules, validate_modules(modules)


def validate_modules(modules: Sequence[ModuleSpec]) -> list[str]:
    """Problems of a module list as a plan: at least one and at most ``MAX_MODULES`` modules,
    unique ids, known dependencies and output types, no cycles, and every module reaches an
    output — it is in the final wave or some module of the final wave depends on it, directly or
    not. (In a DAG every module reaches some sink; requiring the sinks to be the final wave is
    what rules out work nothing builds on, such as an added module left unwired.)"""
    if not modules:
        return ["the plan has no modules — return at least one module"]
    problems = check_modules(modules)
    if len(modules) > MAX_MODULES:
        problems.append(
            f"the plan has {len(modules)} modules — merge related work into at most {MAX_MODULES}"
        )
    if problems:
        return problems
    final = set(module_waves(modules)[-1])
    consumed = {dep for m in modules for dep in m.depends_on}
    return [
        f"module '{m.id}' feeds nothing: no module depends on it and it is not part of the final "
        "output — make a later module depend on it, or drop it"
        for m in modules
        if m.id not in consumed and m.id not in final
    ]


def coverage_problems(
    persona: Persona, modules: Sequence[ModuleSpec], data: Mapping[str, Any]
) -> tuple[list[UncoveredItem], list[str]]:
    """The checklist items ``modules`` leave uncovered (every template module covering them
    dropped) and the problems of those the reply's ``uncovered`` does not explain. An item is
    covered by the template modules its persona says (``covers``); an added module covers
    nothing, as nobody vouched for it."""
    explained: dict[int, str] = {}
    for entry in data.get("uncovered") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("item"), int):
            why = entry.get("why")
            explained[entry["item"]] = " ".join(why.split()) if isinstance(why, str) else ""
    kept = {m.id for m in modules}
    uncovered: list[UncoveredItem] = []
    problems: list[str] = []
    for number, covering in persona.coverage().items():
        if kept & set(covering):
            continue
        item = persona.quality_checklist[number - 1]
        why = explained.get(number, "")
        if why:
            uncovered.append(UncoveredItem(item=item, why=why))
            continue
        problems.append(
            f"checklist item {number} ({json.dumps(item)}) loses coverage: you dropped "
            f"{', '.join(covering)} (the template module(s) covering it) — keep one, or list "
            f"item {number} under 'uncovered' with why the request does not need it"
        )
    return uncovered, problems


def _module(index: int, entry: Any) -> tuple[ModuleSpec | None, list[str]]:
    """One reply entry as a ``ModuleSpec``, or None and what is wrong with it."""
    where = f"module {index + 1}"
    if not isinstance(entry, dict):
        return None, [f"{where} is not an object — give each module as a JSON object"]
    mid = entry.get("id")
    if isinstance(mid, str) and mid:
        where = f"module '{mid}'"
    missing = [f for f in _MODULE_FIELDS if f not in entry]
    if missing:
        return None, [f"{where} has no {', '.join(missing)} — give every field"]
    problems: list[str] = []
    if not isinstance(mid, str) or not _ID.match(mid):
        problems.append(
            f"{where}: id {json.dumps(mid)} is not a valid id — use lower-case letters, digits, "
            "'_' or '-', starting with a letter or digit"
        )
    for field in ("title", "brief"):
        if not isinstance(entry[field], str) or not entry[field].strip():
            problems.append(f"{where}: '{field}' is empty — write it")
    if entry["tier"] not in TIERS:
        problems.append(
            f"{where} has unknown tier {json.dumps(entry['tier'])} — use one of: "
            + ", ".join(TIERS)
        )
    if problems:
        return None, problems
    try:
        return ModuleSpec.model_validate(entry), []
    except ValidationError as err:
        return None, [
            f"{where}: '{'.'.join(map(str, e['loc']))}' {e['msg'].lower()} — fix its type"
            for e in err.errors()
        ]


# ---------------------------------------------------------------------------- the call


def planning_messages(
    persona: Persona, request: str, answers: Sequence[tuple[str, str]]
) -> list[Message]:
    """The prompt: the rules, the template as JSON, the checklist the result is judged by, the
    request and the client's answers to clarifying questions."""
    template = [m.model_dump(exclude={"covers"}) for m in persona.modules]
    coverage = persona.coverage()
    tiers = "\n".join(f"- {tier}: {use}" for tier, use in _TIER_USE.items())
    types = "\n".join(f"- {t}: {describe_output_type(t)}" for t in sorted(KNOWN_OUTPUT_TYPES))
    system = (
        f"You are the engagement lead planning a {persona.name} engagement. Adapt the template "
        "plan to the client's request: drop modules the request does not need, add modules for "
        "what it needs that the template lacks, rewrite briefs so they are specific to this "
        "request, and rewire dependencies so that independent work runs in parallel. Keep a "
        "template module's id when you keep the module. If the template fits as it is, return "
        "it with sharpened briefs.\n\n"
        "Rules: ids are lower-case letters, digits, '_' or '-'; depends_on names only modules "
        "in your plan; no dependency cycles; every module must feed the final output (the last "
        "modules, which nothing depends on, build on everything else); at most "
        f"{MAX_MODULES} modules.\n\nTiers:\n{tiers}\n\nOutput types:\n{types}"
    )
    parts = [
        f"# Client request\n\n{request}",
        "# Template modules\n\n" + json.dumps(template, indent=2),
        "# Quality checklist the deliverable is judged by\n\n"
        + "\n".join(
            f"{number}. {item}"
            + (f" (covered by: {', '.join(coverage[number])})" if number in coverage else "")
            for number, item in enumerate(persona.quality_checklist, start=1)
        )
        + "\n\nKeep at least one module covering each item. If the request truly does not "
        "need an item's modules, list the item's number under 'uncovered' with why.",
    ]
    if answers:
        qa = "\n".join(
            f"- Q: {q}\n  A: {a or '(no answer: assume the usual reading)'}" for q, a in answers
        )
        parts.append(f"# The client's answers to clarifying questions\n\n{qa}")
    return [Message("system", system), Message("user", "\n\n".join(parts))]


async def adapt_plan(
    router: RouterLike,
    *,
    persona: Persona,
    request: str,
    answers: Sequence[tuple[str, str]],
    task_id: str,
) -> PlanOutcome:
    """Adapt ``persona``'s template to ``request`` (and the clarification ``answers``) with a
    reasoning-tier call charged to ``task_id``; ``plan.waves`` is filled in.

    An invalid plan gets one retry with its problems; still invalid, or a failed or refused call
    (provider error, budget), gives the template as it is with ``source="template"`` and the
    reason (also logged as a warning). ``ConfigError`` (no provider for the tier) is raised."""
    messages = planning_messages(persona, request, answers)
    schema = plan_schema()
    first_problems: list[str] = []
    for attempt in (1, 2):
        try:
            result = await _call(router, messages, schema, task_id)
            data = structured_output(result, module_id=PLAN_ID)
        except (ProviderError, BudgetExceeded) as err:
            return _template(persona, task_id, f"the planning call failed ({err})", attempt)
        modules, problems = plan_problems(data)
        uncovered: list[UncoveredItem] = []
        if not problems:
            uncovered, problems = coverage_problems(persona, modules, data)
        if not problems:
            modules = with_template_tools(persona, modules)
            return PlanOutcome(
                Plan(modules=modules, waves=module_waves(modules), uncovered=uncovered),
                "llm",
                _changes(persona, modules, data.get("rationale"), first_problems, uncovered),
                attempt,
            )
        if attempt == 1:
            first_problems = problems
            messages = [
                *messages,
                Message("assistant", json.dumps(data)),
                Message("user", _retry_prompt(problems)),
            ]
    return _template(
        persona, task_id, f"the planner's plan was invalid twice: {_brief(problems)}", 2
    )


async def _call(
    router: RouterLike, messages: Sequence[Message], schema: dict[str, Any], task_id: str
) -> CallResult:
    return await router.call(
        tier="reasoning",
        messages=messages,
        task_id=task_id,
        module_id=PLAN_ID,
        output_schema=schema,
        max_tokens=MAX_TOKENS["reasoning"],
    )


def with_template_tools(persona: Persona, modules: Sequence[ModuleSpec]) -> list[ModuleSpec]:
    """``modules`` with the tools and ``max_turns`` their template module grants. Tools are the
    persona author's to give, not the planner's: a module the planner added gets none."""
    template = {m.id: m for m in persona.modules}
    return [
        m.model_copy(update={"tools": list(t.tools), "max_turns": t.max_turns})
        if (t := template.get(m.id)) is not None
        else m.model_copy(update={"tools": [], "max_turns": None})
        for m in modules
    ]


def _retry_prompt(problems: Sequence[str]) -> str:
    listed = "\n".join(f"- {p}" for p in problems[:_RETRY_PROBLEMS])
    return (
        f"That plan is invalid:\n{listed}\n\nReturn the corrected plan, complete, as one JSON "
        "object matching the schema."
    )


def _template(persona: Persona, task_id: str, why: str, attempts: int) -> PlanOutcome:
    reason = f"{why}; using the {persona.id} template as it is"
    log.warning("plan.fallback_to_template", task_id=task_id, persona=persona.id, reason=reason)
    return PlanOutcome(persona.to_plan(), "template", reason, attempts)


def _changes(
    persona: Persona,
    modules: Sequence[ModuleSpec],
    rationale: Any,
    retried_for: Sequence[str],
    uncovered: Sequence[UncoveredItem],
) -> str:
    """One line on how the plan differs from the template, for the approval and the log."""
    template = [m.id for m in persona.modules]
    ids = [m.id for m in modules]
    added = [i for i in ids if i not in template]
    dropped = [i for i in template if i not in ids]
    parts = [f"added {', '.join(added)}"] if added else []
    parts += [f"dropped {', '.join(dropped)}"] if dropped else []
    summary = "; ".join(parts) or "the template's modules kept"
    text = f"adapted the {persona.id} template: {summary}"
    if isinstance(rationale, str) and rationale.strip():
        text += f" — {' '.join(rationale.split())}"
    if retried_for:
        text += f" (valid after one retry; first attempt: {_brief(retried_for)})"
    if uncovered:
        text += f"; leaves {len(uncovered)} checklist item(s) uncovered"
    return text


def _brief(problems: Sequence[str], *, shown: int = 3, width: int = 200) -> str:
    """The first few problems, each clipped: a model's bad reply can be long and repetitive."""
    clipped = [p if len(p) <= width else p[: width - 1] + "…" for p in problems[:shown]]
    more = len(problems) - shown
    return "; ".join(clipped) + (f" (and {more} more)" if more > 0 else "")
