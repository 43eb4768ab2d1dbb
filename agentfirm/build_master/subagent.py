"""One sub-agent: a scoped brief for one module, one router call, one artifact.

A sub-agent sees only what its module needs: the client's request, its own brief, the assumptions,
its upstream modules' outputs (and which upstream modules were skipped), on a revision the notes
and its previous output, and the research desk's notes when it asked for research. Offered
research, its schema has a ``needs_research`` list (see ``research.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from agentfirm.build_master.agent_loop import AgentLoop, Approve, deny_side_effects
from agentfirm.build_master.journal import Journal
from agentfirm.build_master.research import take_questions, with_research_field
from agentfirm.domain.calls import MAX_TOKENS
from agentfirm.domain.models import Artifact, ModuleSpec, TaskSpec
from agentfirm.errors import ConfigError
from agentfirm.outputs.types import render_markdown, schema_for
from agentfirm.router.base import (
    CallResult,
    Message,
    RouterLike,
    searches_beside_tools,
    searches_natively,
    structured_output,
)
from agentfirm.tools.catalog import ModuleTools

if TYPE_CHECKING:
    from agentfirm.bus.base import Bus


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
class LoopSetup:
    """What a module with tools runs its agent loop with."""

    tools: ModuleTools
    max_turns: int
    bus: Bus
    redact: Callable[[str], str] = lambda s: s
    approve: Approve = deny_side_effects


def _grounded_search(router: RouterLike, module: ModuleSpec) -> bool:
    """Whether the model serving ``module`` searches the web only without tools (Gemini), so
    its loop offers ``web_search`` as a function backed by a grounded call. A router that
    cannot say which model serves the tier (no ``entry_for``) is taken to need none."""
    entry_for = getattr(router, "entry_for", None)
    if entry_for is None:
        return False
    try:
        entry = entry_for(module.tier)
    except ConfigError:
        return False
    return searches_natively(entry.provider, entry.model) and not searches_beside_tools(
        entry.provider, entry.model
    )


def with_cited_sources(
    content: dict[str, Any], schema: Mapping[str, Any], cited: tuple[str, ...]
) -> dict[str, Any]:
    """``content`` with the pages its answer cited (``CallResult.sources``, ``[title](url)``)
    added to its ``sources`` list when its output type has one (a list of strings): a structured
    answer cannot carry the provider's citations in its text, and a page the model read but did
    not list is a source all the same. A page already listed (its url anywhere in an entry) is
    not added twice."""
    prop = (schema.get("properties") or {}).get("sources")
    if not cited or not isinstance(prop, Mapping) or prop.get("type") != "array":
        return content
    if (prop.get("items") or {}).get("type") != "string":
        return content
    listed = content.get("sources")
    kept: list[Any] = listed if isinstance(listed, list) else []
    entries = [e for e in kept if isinstance(e, str)]
    added = [link for link in cited if not any(link.rpartition("](")[2][:-1] in e for e in entries)]
    return {**content, "sources": [*kept, *added]} if added else content


@dataclass(frozen=True)
class SubagentResult:
    artifact: Artifact
    call: CallResult
    questions: list[str]
    """What it asked the research desk (only when offered research; empty: it answered)."""
    turns: int = 1
    tool_calls: int = 0
    exhausted: bool = False
    """Its loop reached ``max_turns`` and it answered with what it had."""


async def run_subagent(
    router: RouterLike,
    *,
    spec: TaskSpec,
    module: ModuleSpec,
    upstream: Mapping[str, Artifact],
    context: Context = Context(),
    loop: LoopSetup | None = None,
) -> SubagentResult:
    """Run ``module`` once at its tier with its output type's schema (plus ``needs_research``
    when ``context.offer_research``). With ``loop`` (the module may use tools) it is an agent
    loop of up to ``max_turns`` turns, journaled on the bus (see ``agent_loop``).

    ``upstream`` maps dependency ids to their latest artifacts; ``context.previous`` is this
    module's own latest artifact, if any: the new artifact's version follows it, and with notes
    it is shown to the model for revision. The artifact never carries ``needs_research``. Nothing
    is saved. Raises what the router raises (``BudgetExceeded``, ``ProviderError``) and
    ``ProviderError`` for output that is not JSON."""
    schema = schema_for(module.output_type)
    if context.offer_research:
        schema = with_research_field(schema)
    messages = build_messages(spec, module, upstream, context)
    turns, calls, exhausted = 1, 0, False
    if loop is None or not loop.tools:
        result = await router.call(
            tier=module.tier,
            messages=messages,
            task_id=spec.task_id,
            module_id=module.id,
            output_schema=schema,
            max_tokens=MAX_TOKENS[module.tier],
        )
        output = structured_output(result, module_id=module.id)
    else:
        journal = await Journal.open(loop.bus, spec.task_id, module.id, messages, loop.redact)
        outcome = await AgentLoop(
            call=partial(router.call, task_id=spec.task_id, module_id=module.id),
            tier=module.tier,
            output_schema=schema,
            max_tokens=MAX_TOKENS[module.tier],
            tools=loop.tools,
            max_turns=loop.max_turns,
            journal=journal,
            approve=loop.approve,
            grounded_search=loop.tools.web_search and _grounded_search(router, module),
            # A router that keeps what is in flight (not a test's) keeps the tool calls too.
            in_flight=getattr(router, "in_flight", None),
            grace_s=getattr(router, "cancel_grace_s", 0.0),
        ).run(messages)
        result, output = outcome.call, outcome.data
        turns, calls, exhausted = outcome.turns, outcome.tool_calls, outcome.exhausted
    questions, content = take_questions(output)
    content = with_cited_sources(content, schema, result.sources)
    previous = context.previous
    artifact = Artifact(
        task_id=spec.task_id,
        module_id=module.id,
        version=previous.version + 1 if previous is not None else 1,
        output_type=module.output_type,
        content=content,
    )
    return SubagentResult(
        artifact,
        result,
        questions if context.offer_research else [],
        turns=turns,
        tool_calls=calls,
        exhausted=exhausted,
    )
