"""The task host: the daemon's Master Agent, driving every task in the background while front ends
come and go. Questions for humans are approval rows (``StoreDecider``); the API decides them.

Offline per task: a task submitted with ``offline=true`` is served by a second view of the same
``App`` whose settings say offline — same store, bus, locks and repos, its own offline router — and
the choice is recorded in the task spec's assumptions (``OFFLINE_ASSUMPTION``), so a restarted
daemon serves the task offline too, whatever its own settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from agentfirm.app import App
from agentfirm.config_check import available_providers
from agentfirm.domain import Approval, ApprovalKind, Event, Task, TaskStatus
from agentfirm.errors import EXIT_FAILED, AgentfirmError, BadInput, ConfigError
from agentfirm.handoff.runners import RunnerName
from agentfirm.master.agent import MasterAgent, RunResult
from agentfirm.master.approvals import StoreDecider, parse_budget
from agentfirm.master.transitions import cancel as cancel_task
from agentfirm.master.transitions import move
from agentfirm.master.transitions import reject as reject_task
from agentfirm.money import usd_to_nano
from agentfirm.router.chains import resolve_chains
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings

log = structlog.get_logger(__name__)

S = TaskStatus
OFFLINE_ASSUMPTION = (
    "Served by the offline provider (submitted with offline=true): output is simulated and "
    "costs are list-price estimates."
)
WAITS_FOR: dict[TaskStatus, ApprovalKind] = {
    S.CLARIFYING: "clarify",
    S.AWAITING_PLAN_APPROVAL: "plan",
    S.AWAITING_BUDGET: "budget",
    S.AWAITING_REVIEW: "review",
}
"""Statuses in which a task waits for a human, and the approval kind it waits on. Not
``failure``: it is asked while ``executing``, a status a task is also in while it runs, so an
executing task is always resumed and asks its pending failure question again — the same row
(``ApprovalBook.current``), answered once."""
RESULT_EVENT = "task.result"
"""Published when a driver stops: ``{"result": RunResult.to_json()}`` (what ``run --json`` prints
in-process), or ``{"error", "exit_code"}`` when the daemon refused to drive the task."""
MAX_ATTACHMENTS = 100


class ShuttingDown(AgentfirmError):
    """The daemon is stopping and takes no new work."""


def is_offline(task: Task) -> bool:
    return task.spec is not None and OFFLINE_ASSUMPTION in task.spec.assumptions


def _attachment_paths(paths: Sequence[str]) -> list[Path]:
    """Absolute paths of readable files on this machine. Raises ``BadInput`` naming the first
    that is not, before anything is written."""
    if len(paths) > MAX_ATTACHMENTS:
        raise BadInput(f"{len(paths)} attachments; at most {MAX_ATTACHMENTS} per task")
    files = []
    for raw in paths:
        path = Path(raw)
        try:
            readable = path.is_absolute() and path.is_file()
        except (OSError, ValueError):
            readable = False
        if not readable:
            raise BadInput(
                f"attachment {raw!r} is not a readable file on the daemon's machine",
                hint="give an absolute path to an existing file",
            )
        files.append(path)
    return files


class TaskHost:
    """Owns the ``App`` and one background driver (an asyncio task) per task being driven."""

    def __init__(self, app: App, *, poll_interval: float = 1.0) -> None:
        self.app = app
        self.decider = StoreDecider(app.store, app.bus, poll_interval=poll_interval)
        self.stopping = asyncio.Event()
        self._offline_app: App | None = None
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._stopped: asyncio.Future[None] | None = None

    @classmethod
    async def open(
        cls, settings: Settings, *, redactor: Redactor, secrets: SecretStore
    ) -> TaskHost:
        return cls(await App.open(settings, redactor=redactor, secrets=secrets))

    @property
    def settings(self) -> Settings:
        return self.app.settings

    def driving_count(self) -> int:
        return sum(1 for driver in self._drivers.values() if not driver.done())

    def driving(self, task_id: str) -> bool:
        driver = self._drivers.get(task_id)
        return driver is not None and not driver.done()

    def _master(
        self, offline: bool, runner: RunnerName | None = None, decider: StoreDecider | None = None
    ) -> MasterAgent:
        """Raises ``ConfigError`` when no provider can serve a task this way, or ``runner``
        cannot run here. ``decider``: instead of the host's (see ``_intake_master``)."""
        decider = decider or self.decider
        if not offline or self.settings.offline:
            return self.app.master(decider, runner=runner)
        if self._offline_app is None:
            self._offline_app = dataclasses.replace(
                self.app, settings=self.settings.model_copy(update={"offline": True}), _router=None
            )
        return self._offline_app.master(decider, runner=runner)

    def _intake_master(
        self, offline: bool, runner: RunnerName | None, actor: str | None
    ) -> MasterAgent:
        """The Master that creates and classifies a task, acting as ``actor`` (who submitted it,
        e.g. ``slack:U123``) so the creation transition names them. Intake asks no human, so
        its own decider never waits; the task is then driven with the host's."""
        if actor is None:
            return self._master(offline, runner)
        book = StoreDecider(self.app.store, self.app.bus, actor=actor)
        return self._master(offline, runner, book)

    def _check_open(self) -> None:
        if self.stopping.is_set():
            raise ShuttingDown("the daemon is shutting down", hint="retry once it has restarted")

    # ------------------------------------------------------------------ drivers
    def _spawn(self, task_id: str, work: Callable[[], Awaitable[RunResult]]) -> None:
        self._check_open()
        if self.driving(task_id):
            raise BadInput(
                f"task {task_id} is already being driven by the daemon",
                hint="answer its pending approval instead",
            )
        self._drivers[task_id] = asyncio.create_task(self._drive(task_id, work), name=task_id)

    async def _drive(self, task_id: str, work: Callable[[], Awaitable[RunResult]]) -> None:
        """Run ``work`` and announce how it ended (``RESULT_EVENT``) to whoever follows the task:
        a front end that started it waits for exactly this."""
        with structlog.contextvars.bound_contextvars(task_id=task_id):
            outcome: dict[str, Any]
            try:
                result = await work()
                log.info("daemon.task_stopped", status=result.status, error=result.error)
                if result.status == "budget_exhausted" and await self._abort_if_asked(task_id):
                    result = dataclasses.replace(result, status="aborted")
                outcome = {"result": result.to_json()}
            except AgentfirmError as err:
                log.warning("daemon.task_refused", error=str(err))
                outcome = {"error": str(err), "exit_code": err.exit_code}
            except Exception as err:
                log.exception("daemon.task_crashed")
                outcome = {
                    "error": f"internal error: {type(err).__name__} (see the daemon log)",
                    "exit_code": EXIT_FAILED,
                }
            try:
                await self.app.bus.publish(task_id, RESULT_EVENT, outcome)
            except Exception:  # the task's own state is persisted; only the notice is lost
                log.exception("daemon.result_unpublished")

    async def _abort_if_asked(self, task_id: str) -> bool:
        """A budget question answered ``aborted`` ends the task (True); ``rejected`` leaves it
        waiting for budget (resumable with a new ceiling)."""
        budgets = [a for a in await self.app.store.list_approvals(task_id) if a.kind == "budget"]
        if not budgets or budgets[-1].decision != "aborted":
            return False
        await move(
            self.app.store,
            self.app.bus,
            task_id,
            S.ABORTED,
            actor=budgets[-1].actor or self.decider.actor,
            reason=budgets[-1].notes or "aborted at the budget question",
        )
        return True

    async def start(self) -> list[str]:
        """Resume every unfinished task that is not waiting for a human (or whose question was
        answered while the daemon was down). Returns their ids."""
        resumed = []
        for task in await self.app.store.list_tasks(limit=100_000):
            if task.status.is_final or self.driving(task.id):
                continue
            kind = WAITS_FOR.get(task.status)
            if kind is not None and not await self._waits_no_more(task, kind):
                continue
            try:
                master = self._master(is_offline(task))
            except ConfigError as err:
                log.warning("daemon.resume_skipped", task_id=task.id, error=str(err))
                continue
            self._spawn(task.id, partial(master.resume, task.id))
            resumed.append(task.id)
        log.info("daemon.resumed", count=len(resumed))
        return resumed

    async def _waits_no_more(self, task: Task, kind: ApprovalKind) -> bool:
        """Whether a task waiting on a ``kind`` question is driven at start: its question was
        answered while the daemon was down, or never asked. This host asks right after moving
        a task into a waiting status (its decider always writes the row), so a task it moved
        there with no question since was stopped between the two writes; driving it asks the
        question. A task someone else moved there may wait with no question by design (planned
        by ``agentfirm plan``, its budget declined under ``--yes``) and is left waiting."""
        answered = await self.decider.current(task.id, kind)
        if answered is None:
            moved = await self.app.store.list_transitions(task.id)
            last = moved[-1] if moved else None
            return (
                last is not None
                and last.to_status is task.status
                and last.actor == self.decider.actor
            )
        if answered.decision == "pending":
            # not driven, so nobody asks again: a question whose announcement the stop cut off
            # is announced here, or no front end would ever show it
            await self.decider.announce(answered)
            return False
        # declined budget: it waits for a new ceiling (POST /tasks/ID/resume)
        return not (kind == "budget" and answered.decision == "rejected")

    # ------------------------------------------------------------------ the API's operations
    async def submit(
        self,
        request: str,
        *,
        persona: str | None = None,
        budget_usd: Decimal | None = None,
        offline: bool = False,
        attachments: Sequence[str] = (),
        runner: RunnerName | None = None,
        actor: str | None = None,
    ) -> dict[str, Any]:
        """Create and classify a task, then drive it in the background: it is planned (asking
        its clarifying questions, if any) and waits for its plan approval. ``attachments``:
        files on this machine the task reads (copied at intake); ``actor``: who submits (the
        creation transition's actor; default the host's). Bad input and unservable
        configurations are refused before a task is written."""
        self._check_open()
        budget_nano = parse_budget(budget_usd) or usd_to_nano(self.settings.budget_usd)
        files = _attachment_paths(attachments)
        master = self._master(offline, runner)
        intake = master if actor is None else self._intake_master(offline, runner, actor)
        task = await intake.intake(request, persona=persona, attachments=files)
        mark_offline = offline and not self.settings.offline
        self._spawn(task.id, partial(self._plan_and_run, master, task, budget_nano, mark_offline))
        return {"task_id": task.id, "status": str(task.status), "persona": task.persona}

    async def _plan_and_run(
        self, master: MasterAgent, task: Task, budget_nano: int, mark_offline: bool
    ) -> RunResult:
        # Planned here, not in the request: clarifying questions wait for answers that come
        # through the API, possibly from the very client that submitted the task.
        await master.plan(task)
        if mark_offline:
            await self._mark_offline(task.id)
        return await master.approve_and_execute(task.id, budget_nano)

    async def _mark_offline(self, task_id: str) -> None:
        """Record in the spec that the task is served offline, so a restart serves it so too."""
        task = await self.app.store.get_task(task_id)
        if task.spec is not None and OFFLINE_ASSUMPTION not in task.spec.assumptions:
            task.spec.assumptions.append(OFFLINE_ASSUMPTION)
            await self.app.store.save_task(task)

    async def decide(
        self,
        approval_id: str,
        decision: str,
        *,
        actor: str,
        notes: str = "",
        budget_usd: Decimal | None = None,
        modules: Collection[str] = (),
        answers: Mapping[str, str] | None = None,
    ) -> Approval:
        """Decide an approval (``answers``: a clarify question's, by question id); a task nobody
        is driving (asked before a restart) is resumed so the decision takes effect."""
        self._check_open()
        decided = await self.decider.decide(
            approval_id,
            decision,
            actor=actor,
            notes=notes,
            budget_usd=budget_usd,
            modules=modules,
            answers=answers,
        )
        if not self.driving(decided.task_id):
            task = await self.app.store.get_task(decided.task_id)
            master = self._master(is_offline(task))
            self._spawn(task.id, partial(master.resume, task.id))
        return decided

    async def resume(
        self, task_id: str, *, budget_usd: Decimal | None = None, offline: bool = False
    ) -> dict[str, Any]:
        """Drive a stopped task again (a task stopped for budget gets ``budget_usd`` as its new
        ceiling first; ``offline``: served offline from now on, restarts included).
        ``after_seq``: the task's last event before; what follows is this run's, up to its
        ``RESULT_EVENT``."""
        self._check_open()
        task = await self.app.store.get_task(task_id)
        if task.status.is_final:
            raise BadInput(f"task {task_id} is already {task.status}: nothing to resume")
        budget_nano = parse_budget(budget_usd)
        master = self._master(offline or is_offline(task))
        if offline and not self.settings.offline and not is_offline(task):
            await self._mark_offline(task_id)
        events = await self.app.bus.replay(task_id)
        self._spawn(task_id, partial(master.resume, task_id, budget_nano=budget_nano))
        return {
            "task_id": task_id,
            "status": str(task.status),
            "after_seq": events[-1].seq if events else 0,
        }

    async def reject(self, task_id: str, *, actor: str, reason: str) -> dict[str, Any]:
        """Reject a task awaiting plan approval that nothing drives (planned by ``agentfirm
        plan``), or abort one stopped for budget. A task being driven is answered through its
        pending question instead."""
        self._check_open()
        if self.driving(task_id):
            raise BadInput(
                f"task {task_id} is being driven by the daemon",
                hint="reject its pending question: agentfirm reject " + task_id,
            )
        status = await reject_task(
            self.app.store, self.app.bus, task_id, actor=actor, reason=reason
        )
        return {"task_id": task_id, "status": str(status)}

    async def cancel(self, task_id: str, *, actor: str, reason: str) -> dict[str, Any]:
        """Stop a task for good: its driver is cancelled (running modules go back to pending),
        its open questions are marked aborted, the budget reservations it still holds are
        released, and it moves to ``aborted``."""
        task = await self.app.store.get_task(task_id)
        if task.status.is_final:
            raise BadInput(f"task {task_id} is already {task.status}: nothing to cancel")
        driver = self._drivers.get(task_id)
        if driver is not None:
            driver.cancel()
            await asyncio.wait([driver])
        self.app.locks.acquire(task_id)  # refuses a task another process is driving
        status = await cancel_task(
            self.app.store, self.app.bus, task_id, actor=actor, reason=reason
        )
        return {"task_id": task_id, "status": str(status)}

    async def follow(
        self, task_id: str, *, after_seq: int = 0, poll_interval: float = 0.1
    ) -> AsyncIterator[Event]:
        """The task's events after ``after_seq``, then new ones as they come. Ends once the task
        is final and nothing drives it any more, or when the daemon stops."""
        last = after_seq
        quiet_and_final = 0
        while not self.stopping.is_set():
            page = await self.app.bus.replay(task_id, after_seq=last)
            for event in page:
                yield event
                last = event.seq
            if page:
                quiet_and_final = 0
                continue
            task = await self.app.store.get_task(task_id)
            if task.status.is_final and not self.driving(task_id):
                quiet_and_final += 1
                if quiet_and_final > 1:  # one more look for events published after the move
                    return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll_interval):
                    await self.stopping.wait()

    def providers(self) -> dict[str, Any]:
        """Provider health (when the router can be built), the tier chains, and what stops the
        router from being built, if anything."""
        rows: list[dict[str, Any]] = []
        problems: list[str] = []
        try:
            rows = self.app.router.health_snapshot()
        except ConfigError as err:
            problems = list(err.problems)
        chains: dict[str, list[str]] = {}
        with contextlib.suppress(ConfigError):
            resolved = resolve_chains(
                self.settings, available_providers(self.settings, self.app.secrets)
            )
            chains = {tier: [entry.label for entry in chain] for tier, chain in resolved.items()}
        return {
            "offline": self.settings.offline,
            "providers": rows,
            "chains": chains,
            "problems": problems,
        }

    # ------------------------------------------------------------------ shutdown
    def shutdown(self) -> None:
        """Stop scheduling at once (SIGTERM): no new work, event streams end, and the drivers are
        cancelled — modules cut short go back to pending — while their last writes finish.
        Idempotent; ``close`` waits for it."""
        self.stopping.set()
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop_drivers())

    async def _stop_drivers(self) -> None:
        drivers = [d for d in self._drivers.values() if not d.done()]
        for driver in drivers:
            driver.cancel()
        if drivers:
            await asyncio.wait(drivers)
        log.info("daemon.drivers_stopped", cancelled=len(drivers))

    async def close(self) -> None:
        """``shutdown``, wait for the drivers, then close the store and bus. The next start
        resumes the tasks."""
        self.shutdown()
        assert self._stopped is not None
        await self._stopped
        await self.app.close()
