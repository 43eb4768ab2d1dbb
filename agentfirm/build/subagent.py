"""One sub-agent: a scoped brief for one module, one router call, one artifact.

A sub-agent sees only what its module needs: the client's request, its own brief, the assumptions,
its upstream modules' outputs and, on a revision, the notes and its previous output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

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


def _module_prompt(
    module: ModuleSpec,
    upstream: Mapping[str, Artifact],
    notes: str,
    previous: Artifact | None,
) -> str:
    parts = [
        f"# Your module: {module.title or module.id} (`{module.id}`, output "
        f"{module.output_type})\n\n"
        f"{module.brief or 'Produce this module for the request above.'}",
    ]
    if upstream:
        parts.append("# Upstream outputs\n\n" + render_upstream(upstream, level=2))
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
    *,
    notes: str = "",
    previous: Artifact | None = None,
) -> list[Message]:
    """The scoped brief. The first two messages — the team's rules and the engagement (request
    and assumptions) — are the same for every module of the task, so they are marked as a
    cacheable prefix: providers with prompt caching bill sibling sub-agents the cached rate for
    it. The third message is this module's work: its brief, upstream outputs, revision notes."""
    return [
        Message("system", _system_prompt(spec)),
        Message("user", _shared_prompt(spec), cache=True),
        Message("user", _module_prompt(module, upstream, notes, previous)),
    ]


async def run_subagent(
    router: RouterLike,
    *,
    spec: TaskSpec,
    module: ModuleSpec,
    upstream: Mapping[str, Artifact],
    notes: str = "",
    previous: Artifact | None = None,
) -> tuple[Artifact, CallResult]:
    """Run ``module`` once at its tier with its output type's schema.

    ``upstream`` maps dependency ids to their latest artifacts; ``previous`` is this module's own
    latest artifact, if any: the new artifact's version follows it, and with ``notes`` it is shown
    to the model for revision. Nothing is saved. Raises what the router raises
    (``BudgetExceeded``, ``ProviderError``) and ``ProviderError`` for output that is not JSON."""
    result = await router.call(
        tier=module.tier,
        messages=build_messages(spec, module, upstream, notes=notes, previous=previous),
        task_id=spec.task_id,
        module_id=module.id,
        output_schema=schema_for(module.output_type),
        max_tokens=MAX_TOKENS[module.tier],
    )
    artifact = Artifact(
        task_id=spec.task_id,
        module_id=module.id,
        version=previous.version + 1 if previous is not None else 1,
        output_type=module.output_type,
        content=structured_output(result, module_id=module.id),
    )
    return artifact, result
