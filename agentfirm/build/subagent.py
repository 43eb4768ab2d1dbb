"""One sub-agent: a scoped brief for one module, one router call, one artifact.

A sub-agent sees only what its module needs: the client's request, its own brief, the assumptions,
its upstream modules' outputs (and which upstream modules were skipped), on a revision the notes
and its previous output, and the research desk's notes when it asked for research. Offered
research, its schema has a ``needs_research`` list (see ``research.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentfirm.build.research import take_questions, with_research_field
from agentfirm.domain import Artifact, ModuleSpec, TaskSpec, Tier
from agentfirm.errors import ProviderError
from agentfirm.master.estimate import MAX_TOKENS
from agentfirm.output_types import render_markdown, schema_for
from agentfirm.router.base import CallResult, Message


class RouterLike(Protocol):
    """What the Build Master needs from the Model Router. ``call`` raises ``BudgetExceeded`` when
    the budget refuses the call (nothing was spent) and ``ProviderError`` when providers fail."""

    async def call(
        self,
        *,
        tier: Tier,
        messages: Sequence[Message],
        task_id: str,
        module_id: str | None = None,
        output_schema: dict[str, Any] | None = None,
        max_tokens: int = 2048,
    ) -> CallResult: ...


def structured_output(result: CallResult, *, module_id: str) -> dict[str, Any]:
    """The call's JSON object. Raises ``ProviderError`` (retryable by the Build Master) when the
    provider returned none."""
    if result.data is not None:
        return result.data
    try:
        parsed = json.loads(result.text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ProviderError(
            f"{result.provider}:{result.model} returned no JSON object for {module_id}",
            hint="retry, or put a model with structured output first in that tier's chain",
        )
    return parsed


def render_upstream(upstream: Mapping[str, Artifact], *, level: int) -> str:
    """Each upstream artifact as markdown under a ``From module `id``` heading at ``level``."""
    parts = []
    for module_id, artifact in upstream.items():
        body = render_markdown(artifact.output_type, artifact.content, level=level + 1)
        parts.append(f"{'#' * level} From module `{module_id}`\n\n{body}")
    return "\n".join(parts)


def _system_prompt(spec: TaskSpec) -> str:
    firm = spec.persona_name or spec.persona
    return (
        f"You are a specialist on a {firm} consulting team. Other specialists handle the other "
        "modules of this engagement; do only the module you are given, and build on the "
        "upstream outputs you are given rather than redoing them. Answer with one JSON object "
        "that fills the given schema completely; state uncertainty inside the fields instead "
        "of leaving them out."
    )


def _shared_prompt(spec: TaskSpec) -> str:
    parts = [f"# Client request\n\n{spec.request}"]
    if spec.assumptions:
        parts.append("# Assumptions\n\n" + "\n".join(f"- {a}" for a in spec.assumptions))
    return "\n\n".join(parts)


@dataclass(frozen=True)
class Context:
    """What a sub-agent is given beyond its module and upstream outputs."""

    notes: str = ""
    """Revision notes (the client's, or the quality review's)."""
    previous: Artifact | None = None
    """Its own latest output: shown for revision when there are notes."""
    research: str = ""
    """The research desk's notes (markdown), after it asked."""
    offer_research: bool = False
    """Whether it may ask for research (its schema gets ``needs_research``)."""
    skipped: tuple[ModuleSpec, ...] = ()
    """Upstream modules that failed and were skipped: it works without them."""


_SKIPPED_RULE = (
    "These modules you depend on failed and the client chose to go on without them. Do your "
    "module without their output and say plainly what is missing because of it."
)
_RESEARCH_OFFER = (
    "If you cannot do this module well without facts you do not have, put up to three specific "
    "questions in needs_research: the research desk searches the client's documents (and the "
    "web, where it can) and you run again with its notes. Otherwise leave needs_research empty."
)


def _module_prompt(module: ModuleSpec, upstream: Mapping[str, Artifact], context: Context) -> str:
    parts = [
        f"# Your module: {module.title or module.id} (`{module.id}`, output "
        f"{module.output_type})\n\n"
        f"{module.brief or 'Produce this module for the request above.'}",
    ]
    if upstream:
        parts.append("# Upstream outputs\n\n" + render_upstream(upstream, level=2))
    if context.skipped:
        names = "\n".join(f"- {m.title or m.id} (`{m.id}`)" for m in context.skipped)
        parts.append(f"# Skipped upstream modules\n\n{names}\n\n{_SKIPPED_RULE}")
    if context.research:
        parts.append(f"# Research notes\n\n{context.research}")
    if context.offer_research:
        parts.append(f"# Research\n\n{_RESEARCH_OFFER}")
    notes, previous = context.notes, context.previous
    if notes:
        parts.append(f"# Revision notes from the client\n\n{notes}")
        if previous is not None:
            rendered = render_markdown(previous.output_type, previous.content, level=2)
            parts.append(f"# Your previous output (revise it)\n\n{rendered}")
    return "\n\n".join(parts)


def build_messages(
    spec: TaskSpec,
    module: ModuleSpec,
    upstream: Mapping[str, Artifact],
    context: Context = Context(),
) -> list[Message]:
    """The scoped brief. The first two messages — the team's rules and the engagement (request
    and assumptions) — are the same for every module of the task, so they are marked as a
    cacheable prefix: providers with prompt caching bill sibling sub-agents the cached rate for
    it. The third message is this module's work: its brief, upstream outputs, skipped upstream
    modules, research notes, revision notes."""
    return [
        Message("system", _system_prompt(spec)),
        Message("user", _shared_prompt(spec), cache=True),
        Message("user", _module_prompt(module, upstream, context)),
    ]


@dataclass(frozen=True)
class SubagentResult:
    artifact: Artifact
    call: CallResult
    questions: list[str]
    """What it asked the research desk (only when offered research; empty: it answered)."""


async def run_subagent(
    router: RouterLike,
    *,
    spec: TaskSpec,
    module: ModuleSpec,
    upstream: Mapping[str, Artifact],
    context: Context = Context(),
) -> SubagentResult:
    """Run ``module`` once at its tier with its output type's schema (plus ``needs_research``
    when ``context.offer_research``).

    ``upstream`` maps dependency ids to their latest artifacts; ``context.previous`` is this
    module's own latest artifact, if any: the new artifact's version follows it, and with notes
    it is shown to the model for revision. The artifact never carries ``needs_research``. Nothing
    is saved. Raises what the router raises (``BudgetExceeded``, ``ProviderError``) and
    ``ProviderError`` for output that is not JSON."""
    schema = schema_for(module.output_type)
    if context.offer_research:
        schema = with_research_field(schema)
    result = await router.call(
        tier=module.tier,
        messages=build_messages(spec, module, upstream, context),
        task_id=spec.task_id,
        module_id=module.id,
        output_schema=schema,
        max_tokens=MAX_TOKENS[module.tier],
    )
    questions, content = take_questions(structured_output(result, module_id=module.id))
    previous = context.previous
    artifact = Artifact(
        task_id=spec.task_id,
        module_id=module.id,
        version=previous.version + 1 if previous is not None else 1,
        output_type=module.output_type,
        content=content,
    )
    return SubagentResult(artifact, result, questions if context.offer_research else [])
