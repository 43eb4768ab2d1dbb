"""The research agent: answers a stuck sub-agent's questions from the task's attached documents
and, where the provider offers it, the web.

A sub-agent offered research fills ``needs_research`` with up to ``MAX_QUESTIONS`` questions when
it cannot do its module well without facts it does not have (an empty list otherwise). The
Build Master then asks ``ResearchAgent.research``: the attached documents are searched (SQLite
FTS5) for each question, and one call at the research tier answers them from the excerpts found
and, with a provider that has native web search, from the web. The notes — the excerpts verbatim
with their labels, and the answer — go back to the sub-agent, which runs again.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from agentfirm.build_master.attachments import Attachments, Passage
from agentfirm.domain.calls import MAX_TOKENS
from agentfirm.domain.models import ModuleSpec, TaskSpec, Tier
from agentfirm.errors import ConfigError
from agentfirm.router.base import CallResult, Message, searches_natively, web_search_allowed

if TYPE_CHECKING:
    from agentfirm.router.base import RouterLike

log = structlog.get_logger(__name__)

FIELD = "needs_research"
MAX_QUESTIONS = 3
MAX_PASSAGES = 8
RESEARCH_PREFIX = "_research:"
"""Research calls are on the ledger as module ``_research:{module_id}``."""


def research_id(module_id: str) -> str:
    return RESEARCH_PREFIX + module_id


def with_research_field(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (an object schema) with the ``needs_research`` list added, required like every
    other field so strict structured-output modes accept it."""
    out = copy.deepcopy(dict(schema))
    out.setdefault("properties", {})[FIELD] = {
        "type": "array",
        "maxItems": MAX_QUESTIONS,
        "items": {
            "type": "string",
            "description": "One specific question a researcher can answer.",
        },
        "description": (
            "Empty unless you cannot do this module well without facts you do not have: then up "
            f"to {MAX_QUESTIONS} questions for the research desk, and you run again with its notes."
        ),
    }
    required = out.setdefault("required", [])
    if FIELD not in required:
        required.append(FIELD)
    return out


def take_questions(content: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The questions a sub-agent asked (deduplicated, at most ``MAX_QUESTIONS``) and its content
    without the ``needs_research`` field."""
    raw = content.get(FIELD)
    rest = {k: v for k, v in content.items() if k != FIELD}
    questions: dict[str, str] = {}
    for item in raw if isinstance(raw, list) else []:
        text = " ".join(str(item).split())
        if text:
            questions.setdefault(text.casefold(), text)
    return list(questions.values())[:MAX_QUESTIONS], rest


@dataclass(frozen=True)
class ResearchNotes:
    """What the research desk found for one round of questions."""

    questions: tuple[str, ...]
    passages: tuple[Passage, ...]
    answer: str
    """The research call's answer; empty when there was nothing to call it with."""
    web_search: bool
    """Whether the call could search the web."""

    @property
    def sources(self) -> list[str]:
        return [p.label for p in self.passages]

    def markdown(self) -> str:
        """The notes as the sub-agent reads them."""
        asked = "\n".join(f"{n}. {q}" for n, q in enumerate(self.questions, start=1))
        parts = [f"You asked:\n\n{asked}"]
        if self.passages:
            excerpts = "\n".join(f'- [{p.label}] "{_one_line(p.text)}"' for p in self.passages)
            parts.append(f"## From the client's documents\n\n{excerpts}")
        if self.answer.strip():
            parts.append(f"## The research desk's answer\n\n{self.answer.strip()}")
        if not self.passages and not self.answer.strip():
            parts.append(
                "Nothing in the client's documents answers these questions"
                + ("" if self.web_search else ", and no web search was available")
                + ": do the module with what you have and say what is missing."
            )
        else:
            parts.append(
                "Use these notes. Cite a document excerpt by its label in square brackets (e.g. "
                f"[{self.passages[0].label if self.passages else 'file.md#1'}]) and a web page by "
                "its URL, in the fields where you use them."
            )
        return "\n\n".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split()).replace('"', "'")


def research_messages(
    spec: TaskSpec,
    module: ModuleSpec,
    questions: Sequence[str],
    passages: Sequence[Passage],
    *,
    web_search: bool,
) -> list[Message]:
    firm = spec.persona_name or spec.persona
    sources = "the excerpts of the client's documents below" + (
        " and web searches" if web_search else ""
    )
    system = (
        f"You are the research desk of a {firm} consulting team. A specialist working on one "
        f"module needs facts. Answer each question briefly from {sources}. Cite every fact: an "
        "excerpt by its label in square brackets, e.g. [report.md#2]; a web page by its URL. "
        "Where nothing answers a question, say so plainly; never guess."
    )
    asked = "\n".join(f"{n}. {q}" for n, q in enumerate(questions, start=1))
    excerpts = (
        "\n\n".join(f"[{p.label}]\n> {_one_line(p.text)}" for p in passages)
        if passages
        else "No attached document matched these questions."
    )
    user = (
        f"# Client request\n\n{spec.request}\n\n"
        f"# The module\n\n{module.title or module.id}: {module.brief or '(no brief)'}\n\n"
        f"# Questions\n\n{asked}\n\n# Excerpts from the client's documents\n\n{excerpts}"
    )
    return [Message("system", system), Message("user", user)]


class ResearchAgent:
    """Searches ``attachments`` (None: no documents) and calls ``router`` at ``tier``."""

    def __init__(
        self, router: RouterLike, *, attachments: Attachments | None, tier: Tier = "execution"
    ) -> None:
        self.router = router
        self.attachments = attachments
        self.tier = tier

    def web_search(self) -> bool:
        """Whether the provider that serves the research tier searches the web natively. A
        router that cannot say (no ``entry_for``) is taken not to."""
        entry_for = getattr(self.router, "entry_for", None)
        if entry_for is None:
            return False
        try:
            entry = entry_for(self.tier)
            return searches_natively(entry.provider, entry.model)
        except ConfigError:
            return False

    async def available(self, task_id: str) -> bool:
        """Whether research can find anything for the task: attached documents, or web search."""
        if self.web_search():
            return True
        return self.attachments is not None and bool(await self.attachments.documents(task_id))

    async def research(
        self, spec: TaskSpec, module: ModuleSpec, questions: Sequence[str]
    ) -> tuple[ResearchNotes, CallResult | None]:
        """Notes for ``questions``: the matching passages and, when there is something to answer
        from (passages found, or web search), one call's answer. Raises what the router raises."""
        passages: list[Passage] = []
        if self.attachments is not None:
            passages = await self.attachments.search(spec.task_id, questions, limit=MAX_PASSAGES)
        web = self.web_search()
        result: CallResult | None = None
        if passages or web:
            with web_search_allowed():
                result = await self.router.call(
                    tier=self.tier,
                    messages=research_messages(spec, module, questions, passages, web_search=web),
                    task_id=spec.task_id,
                    module_id=research_id(module.id),
                    max_tokens=MAX_TOKENS[self.tier],
                )
        notes = ResearchNotes(
            questions=tuple(questions),
            passages=tuple(passages),
            answer=result.text if result is not None else "",
            web_search=web,
        )
        log.info("research.done", module_id=module.id, passages=len(passages), web_search=web)
        return notes, result
