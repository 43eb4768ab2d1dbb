"""Clarification: the few questions worth asking before planning, and only when they matter.

One call judges whether the request leaves open something that would change the work (subject,
scope, audience, geography, time frame, the decision it serves) and returns at most
``MAX_QUESTIONS``. Interactive front ends ask them and pass the ``(question, answer)`` pairs to
planning; non-interactive runs (``--yes``) record ``assumptions_for(questions)`` in the spec
instead, so the sub-agents and the reader know what was assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import structlog

from agentfirm.domain.calls import CLARIFY_ID
from agentfirm.domain.models import Tier
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.personas.library import Persona
from agentfirm.router.base import Message, RouterLike, structured_output

log = structlog.get_logger(__name__)

MAX_QUESTIONS = 3
"""``module_id`` of the clarification call on the ledger."""

_MAX_TOKENS = 400


def clarification_schema() -> dict[str, Any]:
    """The call's output schema: whether the request is ambiguous, and the questions."""
    return {
        "type": "object",
        "properties": {
            "ambiguous": {
                "type": "boolean",
                "description": "True only if an answer would change the work substantially.",
            },
            "questions": {
                "type": "array",
                "items": {"type": "string", "description": "One short, specific question."},
                "description": f"At most {MAX_QUESTIONS}, most important first; [] if clear.",
            },
        },
        "required": ["ambiguous", "questions"],
        "additionalProperties": False,
    }


def clarification_messages(persona: Persona, request: str) -> list[Message]:
    """The prompt: the persona's work and modules, and the request."""
    modules = "\n".join(f"- {m.title}" for m in persona.modules)
    system = (
        f"You lead a {persona.name} engagement: {persona.description} Before the team plans the "
        "work, decide whether the client's request leaves open something that would change the "
        "work substantially — its subject, scope, audience, geography, time frame, or the "
        "decision it serves. Ask only what you cannot reasonably assume; a good team assumes "
        f"the usual reading and says so. At most {MAX_QUESTIONS} short questions, most "
        "important first, each answerable in a sentence. If the request is clear enough to "
        "start, answer ambiguous=false with no questions."
    )
    user = f"# The team's modules\n\n{modules}\n\n# Client request\n\n{request}"
    return [Message("system", system), Message("user", user)]


async def clarifying_questions(
    router: RouterLike,
    *,
    persona: Persona,
    request: str,
    task_id: str,
    tier: Tier = "utility",
) -> list[str]:
    """The questions to ask before planning ``request``: empty when the model finds it clear;
    otherwise at most ``MAX_QUESTIONS``, deduplicated, in the model's order. One call on
    ``tier``, charged to ``task_id``. Clarification is optional, so a failed or refused call
    (provider error, budget) is logged and gives no questions; ``ConfigError`` is raised."""
    try:
        result = await router.call(
            tier=tier,
            messages=clarification_messages(persona, request),
            task_id=task_id,
            module_id=CLARIFY_ID,
            output_schema=clarification_schema(),
            max_tokens=_MAX_TOKENS,
        )
        data = structured_output(result, module_id=CLARIFY_ID)
    except (ProviderError, BudgetExceeded) as err:
        log.warning("clarify.failed", task_id=task_id, error=str(err))
        return []
    if data.get("ambiguous") is not True:
        return []
    raw = data.get("questions")
    questions: dict[str, str] = {}
    for item in raw if isinstance(raw, list) else []:
        text = " ".join(str(item).split())
        if text:
            questions.setdefault(text.casefold(), text)
    return list(questions.values())[:MAX_QUESTIONS]


def assumptions_for(questions: Sequence[str]) -> list[str]:
    """For a run that cannot ask (``--yes``): one assumption per unasked question, for the
    spec's ``assumptions``."""
    return [_assumed(q, "not asked (non-interactive run)") for q in questions]


def assumptions_from_answers(answers: Sequence[tuple[str, str]]) -> list[str]:
    """The client's answers as spec ``assumptions`` lines, so every sub-agent sees them; a
    question left unanswered becomes an assumption."""
    lines: list[str] = []
    for question, answer in answers:
        text = " ".join(answer.split())
        if text:
            lines.append(f"{question} — the client answered: {text}")
        else:
            lines.append(_assumed(question, "left unanswered"))
    return lines


def _assumed(question: str, why: str) -> str:
    return (
        f"{question} — {why}: the team takes the most likely reading of the request and states "
        "it where it matters."
    )
