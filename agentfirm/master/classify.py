"""Classification: which persona a request is for (ARCHITECTURE.md §3).

Keywords first: free, deterministic and explainable (``PersonaLibrary.classify``). When no persona
wins clearly and a router is at hand, one utility-tier call picks among the personas'
descriptions; its pick is taken at ``LLM_ACCEPT_CONFIDENCE`` or above. Anything less certain ends
in stage ``ask``: the front end asks the user (``--yes`` runs must name ``--persona``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import structlog

from agentfirm.domain.calls import CLASSIFY_ID
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.personas.library import Classification, Persona, PersonaLibrary
from agentfirm.router.base import Message, RouterLike, structured_output

log = structlog.get_logger(__name__)

LLM_ACCEPT_CONFIDENCE = 0.7
"""The LLM stage's pick is accepted at this self-reported confidence or above. Models' own
confidence is loosely calibrated, so the bar is set where they call a pick clear rather than
plausible: asking costs the user one question, a wrong persona costs a whole plan."""

"""``module_id`` of the classification call on the ledger."""

NO_PERSONA = "none"
_MAX_TOKENS = 300


def classification_schema(persona_ids: Sequence[str]) -> dict[str, Any]:
    """The LLM stage's output schema: a persona id (or ``none``), a confidence and a reason."""
    return {
        "type": "object",
        "properties": {
            "persona": {
                "type": "string",
                "enum": [*persona_ids, NO_PERSONA],
                "description": f"The persona that fits the request, or '{NO_PERSONA}'.",
            },
            "confidence": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "description": "How sure you are, from 0 (a guess) to 1 (certain).",
            },
            "reason": {"type": "string", "description": "One sentence: why this persona."},
        },
        "required": ["persona", "confidence", "reason"],
        "additionalProperties": False,
    }


def classification_messages(
    personas: Sequence[Persona], request: str, keywords: Classification
) -> list[Message]:
    """The prompt: every persona's id, name and description, the request, and the keyword hits
    as hints."""
    catalogue = "\n".join(f"- `{p.id}` ({p.name}): {p.description}" for p in personas)
    hints = "; ".join(f"{pid}: {', '.join(words)}" for pid, words in keywords.matched.items())
    system = (
        "You route client requests to the practice of a consulting firm that does that kind of "
        "work. Pick the one practice whose work the request asks for. Answer "
        f"'{NO_PERSONA}' when none of them does the work, or when the request fits several "
        "equally; then give a low confidence. Judge by what the client wants delivered, not by "
        "words the request happens to share with a description."
    )
    user = f"# Practices\n\n{catalogue}\n\n# Request\n\n{request}"
    if hints:
        user += f"\n\n# Keyword matches (hints only, may mislead)\n\n{hints}"
    return [Message("system", system), Message("user", user)]


async def classify_request(
    library: PersonaLibrary,
    request: str,
    *,
    router: RouterLike | None,
    task_id: str | None,
) -> Classification:
    """Classify ``request``: stage ``keywords`` when one persona's keywords win clearly; else,
    with a ``router`` and a ``task_id`` (whose budget pays for one utility-tier call), stage
    ``llm`` when the model names a persona with confidence ≥ ``LLM_ACCEPT_CONFIDENCE``; else
    stage ``ask`` with ``persona`` None. ``matched`` and ``scores`` are always the keyword
    stage's; ``reason`` says why in one line. A failed or refused LLM call (provider error,
    budget) is logged and ends in ``ask``; ``ConfigError`` (no provider for the tier) is raised."""
    keywords = library.classify(request)
    if keywords.stage == "keywords" or router is None or task_id is None:
        return keywords
    personas = library.all()
    ids = [p.id for p in personas]
    try:
        result = await router.call(
            tier="utility",
            messages=classification_messages(personas, request, keywords),
            task_id=task_id,
            module_id=CLASSIFY_ID,
            output_schema=classification_schema(ids),
            max_tokens=_MAX_TOKENS,
        )
        data = structured_output(result, module_id=CLASSIFY_ID)
    except (ProviderError, BudgetExceeded) as err:
        log.warning("classify.llm_failed", task_id=task_id, error=str(err))
        return replace(keywords, reason=f"{keywords.reason}; the LLM stage failed: {err}")
    persona, confidence, why = _read_pick(data, ids)
    if persona is not None and confidence >= LLM_ACCEPT_CONFIDENCE:
        return Classification(
            persona,
            "llm",
            keywords.matched,
            keywords.scores,
            reason=f"LLM ({confidence:.2f}): {why}",
            confidence=confidence,
        )
    picked = persona or NO_PERSONA
    return Classification(
        None,
        "ask",
        keywords.matched,
        keywords.scores,
        reason=f"{keywords.reason}; LLM unsure ({picked} at {confidence:.2f}): {why}",
        confidence=confidence,
    )


def _read_pick(data: dict[str, Any], ids: Sequence[str]) -> tuple[str | None, float, str]:
    """The persona (None for ``none`` or an unknown id), the confidence clamped to 0..1 (0 when
    missing), and the reason, from the model's reply."""
    raw = data.get("persona")
    persona = raw if isinstance(raw, str) and raw in ids else None
    value = data.get("confidence")
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
    why = str(data.get("reason") or "").strip() or "no reason given"
    if isinstance(raw, str) and raw not in ids and raw != NO_PERSONA:
        why = f"named unknown persona {json.dumps(raw)}; {why}"
    return persona, min(max(number, 0.0), 1.0), why
