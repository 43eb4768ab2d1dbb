"""Intake and planning: create the task (with its attached documents), classify it, clarify it
when it is ambiguous, and adapt the persona's template into the plan put up for approval."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agentfirm.build.attachments import Attachments, Document
from agentfirm.build.subagent import RouterLike
from agentfirm.bus.base import Bus
from agentfirm.domain import Task, TaskSpec, TaskStatus, Tier
from agentfirm.errors import BadInput, ConfigError, TaskRejected
from agentfirm.ids import new_id
from agentfirm.master.clarify import assumptions_for, assumptions_from_answers, clarifying_questions
from agentfirm.master.classify import classify_request
from agentfirm.master.decisions import Decider
from agentfirm.master.planning import adapt_plan
from agentfirm.master.task_lock import TaskLocks
from agentfirm.master.transitions import move
from agentfirm.personas import Classification, PersonaLibrary
from agentfirm.router.base import ChainEntry
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

    async def _create(self, request: str, persona: str | None, documents: list[Document]) -> Task:
        task = Task(id=new_id("t"), request=request, persona=persona)
        self.locks.acquire(task.id)
        await self.store.create_task(task, actor=self.decider.actor)
        if self.intake_budget_nano:  # pays for classification, clarification and planning
            await self.store.set_budget(task.id, self.intake_budget_nano)
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
        self, request: str, *, persona: str | None = None, attachments: Sequence[Path] = ()
    ) -> Task:
        """See ``MasterAgent.intake``."""
        request = request.strip()
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
            return await self.classify(await self._create(request, None, documents))
        reason = "--persona"
        if chosen is None:
            chosen, reason = await self._choose(request, classification, None)
        task = await self._create(request, chosen, documents)
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
        return None if got is None else list(got)

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
