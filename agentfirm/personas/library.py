"""Persona templates: the library of personas, and the keyword stage of classification.

A persona is data: a YAML file naming the modules (a DAG of scoped briefs with tiers and output
types) and the quality checklist for one kind of professional work. Shipped personas live in the
``agentfirm.persona_templates`` package (the repository's ``personas/`` directory); a user's files
with the same id override them. The model is in ``persona_model``, file reading in
``persona_yaml``; both are re-exported here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import structlog

from agentfirm.errors import AgentfirmError, NotFound, PersonaError
from agentfirm.personas.loader import load_persona_file, parse_persona
from agentfirm.personas.model import (
    ModuleTemplate,
    Persona,
    check_modules,
    module_waves,
)

__all__ = [
    "Classification",
    "ModuleTemplate",
    "Persona",
    "PersonaLibrary",
    "check_modules",
    "load_persona_file",
    "module_waves",
    "parse_persona",
]

log = structlog.get_logger(__name__)

SHIPPED_PACKAGE = "agentfirm.persona_templates"

# A clear keyword winner scores at least MIN_SCORE, at least MIN_LEAD points more than the
# runner-up, and at least MIN_RATIO times the runner-up's score. Anything closer is left to the
# LLM stage or the user: a wrong persona costs a whole plan, asking costs one question.
MIN_SCORE = 1.0
MIN_LEAD = 1.0
MIN_RATIO = 2.0


@dataclass(frozen=True)
class Classification:
    """Which persona fits a request and why. ``matched`` lists, per persona with any match, the
    keywords found; ``scores`` has every persona's keyword score. ``persona`` is None when the
    stage is ``ask``. ``reason`` is one line for people; ``confidence`` is the LLM stage's own
    (None from the keyword stage)."""

    persona: str | None
    stage: Literal["keywords", "llm", "ask"]
    matched: dict[str, list[str]]
    scores: dict[str, float]
    reason: str = ""
    confidence: float | None = None


_WORD = re.compile(r"[^\W_]+")


def _singular(word: str) -> str:
    """A crude singular, applied to request and keywords alike so 'claims' meets 'claim'."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "shes", "ches", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(text: str) -> tuple[str, ...]:
    return tuple(_singular(w) for w in _WORD.findall(text.casefold()))


def _contains(words: tuple[str, ...], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i : i + n] == phrase for i in range(len(words) - n + 1))


class PersonaLibrary:
    """The personas available to classify and plan with, by id."""

    def __init__(self, personas: Iterable[Persona]) -> None:
        """Later personas with the same id replace earlier ones."""
        self._personas = {p.id: p for p in personas}
        self._keywords = {
            p.id: [(k, _words(k)) for k in p.classification_keywords]
            for p in self._personas.values()
        }

    @classmethod
    def load(cls, extra_dirs: Sequence[Path] = ()) -> PersonaLibrary:
        """The shipped personas plus every ``*.yaml``/``*.yml`` in ``extra_dirs`` (missing dirs are
        skipped); a later file with the same id overrides. Reads files: from async code call it
        through ``asyncio.to_thread``. Raises ``PersonaError`` listing the problems of all files."""
        personas: list[Persona] = []
        problems: list[str] = []
        try:
            shipped = resources.files(SHIPPED_PACKAGE)
        except ModuleNotFoundError as err:
            raise AgentfirmError(
                f"the shipped personas package {SHIPPED_PACKAGE} is not installed",
                hint="reinstall agentfirm, e.g. pip install -e .",
            ) from err
        sources = [
            (entry.name, entry.read_text(encoding="utf-8"))
            for entry in sorted(shipped.iterdir(), key=lambda e: e.name)
            if entry.name.endswith(".yaml")
        ]
        for name, text in sources:
            try:
                personas.append(parse_persona(text, source=f"{SHIPPED_PACKAGE}/{name}"))
            except PersonaError as err:
                problems += err.problems
        shipped_ids = {p.id for p in personas}
        for directory in extra_dirs:
            if not directory.is_dir():
                continue
            files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
            for path in files:
                try:
                    persona = load_persona_file(path)
                except PersonaError as err:
                    problems += err.problems
                    continue
                if persona.id in shipped_ids:
                    log.info("persona.override", persona=persona.id, path=str(path))
                personas.append(persona)
        if problems:
            raise PersonaError(problems)
        return cls(personas)

    def get(self, persona_id: str) -> Persona:
        """The persona ``persona_id``; ``NotFound`` (listing the known ids) if there is none."""
        try:
            return self._personas[persona_id]
        except KeyError:
            raise NotFound(
                f"unknown persona '{persona_id}'",
                hint="use one of: " + ", ".join(sorted(self._personas)),
            ) from None

    def all(self) -> list[Persona]:
        """Every persona, sorted by id."""
        return [self._personas[pid] for pid in sorted(self._personas)]

    def classify(self, request: str) -> Classification:
        """Keyword stage of classification (deterministic, no LLM call).

        Each persona scores, per distinct keyword found in the request as whole words (case and
        simple plurals ignored), the keyword's word count — a phrase is stronger evidence. A clear
        winner (see ``MIN_SCORE``, ``MIN_LEAD``, ``MIN_RATIO``) gives stage ``keywords``;
        otherwise ``persona`` is None and stage ``ask`` (the caller may try the LLM stage)."""
        words = _words(request)
        matched: dict[str, list[str]] = {}
        scores: dict[str, float] = {}
        for pid in sorted(self._keywords):
            found = [(k, phrase) for k, phrase in self._keywords[pid] if _contains(words, phrase)]
            scores[pid] = float(sum(len(phrase) for _, phrase in found))
            if found:
                matched[pid] = [k for k, _ in found]
        ranked = sorted(scores.items(), key=lambda item: -item[1])
        top_id, top = ranked[0] if ranked else ("", 0.0)
        runner_id, runner_up = ranked[1] if len(ranked) > 1 else ("", 0.0)
        if top >= MIN_SCORE and top - runner_up >= MIN_LEAD and top >= MIN_RATIO * runner_up:
            reason = f"keywords {', '.join(matched[top_id])} (score {top:g}"
            reason += f"; next {runner_id} {runner_up:g})" if runner_up else ")"
            return Classification(top_id, "keywords", matched, scores, reason)
        if top:
            reason = f"no clear keyword winner: {top_id} {top:g}, {runner_id} {runner_up:g}"
        else:
            reason = "no persona's keywords occur in the request"
        return Classification(None, "ask", matched, scores, reason)
