"""Intake and planning: create the task (with its attached documents), classify it, clarify it
when it is ambiguous, and adapt the persona's template into the plan put up for approval."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentfirm.build_master.attachments import Attachments, Document
from agentfirm.bus.base import Bus
from agentfirm.domain.models import Task, TaskSpec, TaskStatus, Tier
from agentfirm.domain.policy import TaskPolicy
from agentfirm.errors import BadInput, ConfigError, TaskRejected
from agentfirm.ids import new_id
from agentfirm.master.clarify import assumptions_for, assumptions_from_answers, clarifying_questions
from agentfirm.master.classify import classify_request
from agentfirm.master.decisions import Decider
from agentfirm.master.planning import adapt_plan
from agentfirm.master.task_lock import TaskLocks
from agentfirm.master.transitions import move
from agentfirm.personas.library import Classification, PersonaLibrary
from agentfirm.router.base import ChainEntry, RouterLike
from agentfirm.store.base import Store

S = TaskStatus


class MasterRouter(RouterLike, Protocol):
    """What the Master Agent needs of the Model Router: calls, and which model serves a tier."""

    def entry_for(self, tier: Tier) -> ChainEntry: ...


@dataclass
class IntakeDesk:
    store: Store
    bus: Bus
    decider: Decider
    personas: PersonaLibrary
    locks: TaskLocks
    router: MasterRouter | None
    intake_budget_nano: int
    attachments: Attachments | None
    redact: Callable[[str], str] | None = None

    async def _move(self, task_id: str, to: TaskStatus, reason: str = "") -> None:
        await move(self.store, self.bus, task_id, to, actor=self.decider.actor, reason=reason)

    def model_can(self, tier: Tier) -> bool:
        """Whether a real model serves ``tier``. The offline provider's output is a schema-true
        simulation: good for running modules, meaningless for choosing a persona or reshaping
        a plan, so those decisions fall back to keywords and the template offline."""
        if self.router is None:
            return False
        try:
            return self.router.entry_for(tier).provider != "offline"
        except ConfigError:
            return False

    async def _create(
        self,
        request: str,
        persona: str | None,
        documents: list[Document],
        budget_nano: int | None = None,
        policy: TaskPolicy | None = None,
    ) -> Task:
        task = Task(id=new_id("t"), request=request, persona=persona, policy=policy or TaskPolicy())
        self.locks.acquire(task.id)
        await self.store.create_task(task, actor=self.decider.actor)
        # Classification, clarification and planning reserve against the task's own ceiling
        # when it was given, else against the intake cap: one ceiling covers the whole task.
        ceiling = budget_nano if budget_nano is not None else self.intake_budget_nano
        if ceiling:
            await self.store.set_budget(task.id, ceiling)
        # Indexed before classification, so a task stopped while it is classified keeps them.
        if documents and self.attachments is not None:
            indexed = await self.attachments.add(task.id, documents)
            await self.bus.publish(
                task.id,
                "attachments.indexed",
                {"documents": [{"name": name, "passages": n} for name, n in indexed]},
            )
        return task

    async def intake(
        self,
        request: str,
        *,
        persona: str | None = None,
        attachments: Sequence[Path] = (),
        budget_nano: int | None = None,
        policy: TaskPolicy | None = None,
        on_created: Callable[[str], None] = lambda task_id: None,
    ) -> Task:
        """Create the task and classify it: ``--persona``, else keywords, else (with a real
        model) a utility-tier call, else the decider is asked. ``attachments`` are copied and
        indexed for the task's research agent. Bad input (empty request, unknown persona, no
        persona under ``--yes``, an attachment that is missing or not text — named) is refused
        before anything is written — except when a model classifies the request: that task is
        created first (its call is charged to it), and is kept, marked failed, with its ledger
        rows and attachments. ``budget_nano``: the task's ceiling, which its intake's calls
        reserve against already; None: the intake cap (``intake_budget_nano``). ``policy`` is
        written with the task, before anything else. ``on_created``: told the task's id as soon
        as it exists when a model classifies it (a Ctrl-C meanwhile leaves it to resume)."""
        # Scrubbed before anything is written: the request goes into the task row, events, the
        # repo's README and spec, the notebook and commits, and none of them may hold a key.
        request = request.strip()
        if self.redact is not None:
            request = self.redact(request)
        if not request:
            raise BadInput("the request is empty", hint='say what you need, e.g. agentfirm run "…"')
        chosen = self.personas.get(persona).id if persona else None
        documents: list[Document] = []
        if attachments:
            if self.attachments is None:
                raise BadInput("attachments cannot be kept here: this Master has no data dir")
            documents = await self.attachments.read(attachments)
        classification = self.personas.classify(request)
        if chosen is None and classification.persona is None and self.model_can("utility"):
            # The model's call is charged to the task, so the task exists first.
            task = await self._create(request, None, documents, budget_nano, policy)
            on_created(task.id)
            return await self.classify(task)
        reason = "--persona"
        if chosen is None:
            chosen, reason = await self._choose(request, classification, None)
        task = await self._create(request, chosen, documents, budget_nano, policy)
        await self._move(task.id, S.CLASSIFIED, reason)
        return await self.store.get_task(task.id)

    async def classify(self, task: Task) -> Task:
        """Choose the persona of a task created without one (``received``) and move it to
        ``classified``: at intake, or when resuming a task whose process died while the model
        classified it — that answer died with it, so the call is made again. A request no
        persona fits fails the task and raises ``BadInput``."""
        classification = self.personas.classify(task.request)
        if classification.persona is None and self.model_can("utility"):
            classification = await classify_request(
                self.personas, task.request, router=self.router, task_id=task.id
            )
        chosen, reason = await self._choose(task.request, classification, task)
        task.persona = chosen
        await self.store.save_task(task)
        await self._move(task.id, S.CLASSIFIED, reason)
        return await self.store.get_task(task.id)

    async def _choose(
        self, request: str, classification: Classification, task: Task | None
    ) -> tuple[str, str]:
        """The persona for ``request`` and why: the classification's, else the decider's pick
        among the closest. When the decider cannot pick, ``task`` (if it exists already) fails."""
        if classification.persona is not None:
            words = ", ".join(classification.matched.get(classification.persona, []))
            why = classification.reason or f"{classification.stage}: {words}"
            return classification.persona, why
        ranked = sorted(classification.scores, key=lambda p: -classification.scores[p])
        candidates = ranked or [p.id for p in self.personas.all()]
        try:
            picked = await self.decider.choose_persona(request, candidates, classification.scores)
            chosen = self.personas.get(picked).id
        except BadInput as err:
            if task is not None:
                await self._move(task.id, S.CLASSIFIED, "no persona fits")
                await self._move(task.id, S.FAILED, str(err))
            raise
        return chosen, f"chosen by {self.decider.actor}"

    async def _clarify(self, task: Task, questions: list[str]) -> list[tuple[str, str]] | None:
        """The decider's answers (None: it cannot ask, or chose not to answer). A resumed task
        already clarifying asks again without a new transition, so a question row asked before
        the restart is found again. Aborting the questions aborts the task."""
        if task.status is not S.CLARIFYING:
            await self._move(task.id, S.CLARIFYING, f"{len(questions)} question(s)")
        ask = getattr(self.decider, "clarify", None)
        if ask is None:
            return None
        try:
            got = await ask(task, questions)
        except TaskRejected as err:
            await self._move(task.id, S.ABORTED, str(err))
            raise
        if got is None:
            return None
        redact = self.redact or (lambda text: text)  # answers typed at a terminal prompt
        return [(question, redact(answer)) for question, answer in got]

    async def _asked_before(self, task: Task) -> list[str]:
        """A task resumed while clarifying puts the questions it asked before (their row may
        hold the answers) rather than new ones from another call."""
        asked = getattr(self.decider, "clarify_asked", None)
        if task.status is not S.CLARIFYING or asked is None:
            return []
        return list(await asked(task.id))

    async def plan(self, task: Task) -> TaskSpec:
        """See ``MasterAgent.plan``; returns the spec saved on the task."""
        if task.persona is None:
            raise BadInput(
                f"task {task.id} has no persona yet: it was stopped while it was classified",
                hint=f"resume it to classify it first: agentfirm resume {task.id}",
            )
        persona = self.personas.get(task.persona)
        questions = await self._asked_before(task)
        if not questions and self.router is not None:
            questions = await clarifying_questions(
                self.router, persona=persona, request=task.request, task_id=task.id
            )
        answers: list[tuple[str, str]] = []
        assumptions: list[str] = []
        if questions:
            got = await self._clarify(task, questions)
            if got is None:
                assumptions = assumptions_for(questions)
            else:
                answers = got
                assumptions = assumptions_from_answers(answers)
        if self.model_can("reasoning") and self.router is not None:
            outcome = await adapt_plan(
                self.router,
                persona=persona,
                request=task.request,
                answers=answers,
                task_id=task.id,
            )
            plan, why = outcome.plan, outcome.reason
        else:
            plan = persona.to_plan()
            why = f"template {persona.id} as is (no real model to adapt it)"
        spec = TaskSpec(
            task_id=task.id,
            request=task.request,
            persona=persona.id,
            persona_name=persona.name,
            plan=plan,
            quality_checklist=list(persona.quality_checklist),
            budget_nano=0,
            assumptions=[*(assumptions or ["The request is taken as written."]), f"Plan: {why}"],
        )
        task = await self.store.get_task(task.id)
        task.spec = spec
        await self.store.save_task(task)
        await self._move(task.id, S.PLANNED, f"{why}; {len(plan.modules)} modules")
        await self._move(task.id, S.AWAITING_PLAN_APPROVAL)
        return spec
