"""The task host: the daemon's Master Agent, driving every task in the background while front ends
come and go. Questions for humans are approval rows (``StoreDecider``); the API decides them; a
task created with ``--yes`` answers its own (its policy).

Each task is served as its policy says (``domain/policy.py``, written with the task): offline, the
latency, the runner, the proposed budget, the submitter's personas directory. A view of the same
``App`` per combination of settings — same store, bus, locks and repos, its own router — serves
it, so a restarted daemon serves the task the same way, whatever its own settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from decimal import Decimal
from functools import partial
from typing import Any

import structlog

from agentfirm.api.models import UNRECORDED
from agentfirm.app import App
from agentfirm.config_check import available_providers
from agentfirm.domain.decision import Decision
from agentfirm.domain.models import Approval, ApprovalKind, Event, Task, TaskStatus
from agentfirm.domain.policy import RunnerName, TaskPolicy
from agentfirm.errors import EXIT_FAILED, AgentfirmError, BadInput, ConfigError, PersonaError
from agentfirm.ids import new_id
from agentfirm.master.agent import MasterAgent, RunResult
from agentfirm.master.approvals import StoreDecider
from agentfirm.master.transitions import check_not_ended
from agentfirm.master.transitions import reject as reject_task
from agentfirm.money import parse_budget_nano, usd_to_nano
from agentfirm.router.chains import resolve_chains
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.tools.catalog import check_allowed, servers_from_settings

from .attachments import attachment_paths
from .cancelling import Cancelling

log = structlog.get_logger(__name__)

S = TaskStatus
OFFLINE_ASSUMPTION = (
    "Served by the offline provider (submitted with offline=true): output is simulated and "
    "costs are list-price estimates."
)
"""How daemons before task policies recorded an offline task (in its spec's assumptions)."""
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


class ShuttingDown(AgentfirmError):
    """The daemon is stopping and takes no new work."""


def policy_of(task: Task) -> TaskPolicy:
    """The task's policy, with the offline mark an older daemon left in its spec."""
    legacy = task.spec is not None and OFFLINE_ASSUMPTION in task.spec.assumptions
    return task.policy.model_copy(update={"offline": True}) if legacy else task.policy


class TaskHost:
    """Owns the ``App`` and one background driver (an asyncio task) per task being driven."""

    def __init__(self, app: App, *, poll_interval: float = 1.0) -> None:
        self.app = app
        self.decider = StoreDecider(
            app.store, app.bus, redact=app.redactor.redact, poll_interval=poll_interval
        )
        self.stopping = asyncio.Event()
        self._views: dict[tuple[tuple[str, object], ...], App] = {}
        self._drivers: dict[str, asyncio.Task[None]] = {}
        # How a driver ended when its RESULT_EVENT could not be published (a full disk): kept
        # here so followers still get it, not left waiting for an event that never comes.
        self._unpublished: dict[str, dict[str, Any]] = {}
        self._cancelling = Cancelling(
            app,
            self._drivers,
            announce=self._announce,
            runner_of=lambda task: policy_of(task).runner or self.settings.runner,
        )
        self._stopped: asyncio.Future[None] | None = None
        # The start's look at calls left "≤" (``_reconcile_left``).
        self._reconciling: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        redactor: Redactor,
        secrets: SecretStore,
        env: Mapping[str, str] | None = None,
    ) -> TaskHost:
        """``env``: the daemon's environment. A notebook's kernel gets it: without it the kernel
        would have only the ``AGENTFIRM_*`` settings — no provider key from the environment,
        not even ``PATH``."""
        return cls(await App.open(settings, redactor=redactor, secrets=secrets, env=env))

    @property
    def settings(self) -> Settings:
        return self.app.settings

    def driving_count(self) -> int:
        return sum(1 for driver in self._drivers.values() if not driver.done())

    def drives(self, task_id: str) -> bool:
        """Whether anything drives the task: this daemon, or another process holding its lock
        (a ``--no-daemon`` run)."""
        return self.driving(task_id) or self.app.locks.held(task_id)

    def driving(self, task_id: str) -> bool:
        driver = self._drivers.get(task_id)
        return driver is not None and not driver.done()

    async def _master(self, policy: TaskPolicy, decider: StoreDecider | None = None) -> MasterAgent:
        """A Master serving a task as ``policy`` says. Raises ``ConfigError`` when no provider can
        serve it this way, or its runner cannot run here; ``PersonaError`` when its personas
        directory holds a bad file. ``decider``: instead of the host's (see ``submit``)."""
        settings = TaskPolicy(offline=policy.offline, offline_latency_ms=policy.offline_latency_ms)
        key = tuple(sorted(settings.settings_update().items()))
        view = self._views.get(key)
        if view is None:
            view = self._views[key] = self.app.serving(settings)
        if policy.personas_dir is not None:
            # Read again for each task, so personas added since the daemon started are known.
            # The view's router is built first, so every task of the view shares it.
            view.router  # noqa: B018
            personas = TaskPolicy(personas_dir=policy.personas_dir)
            view = dataclasses.replace(
                view, personas=(await asyncio.to_thread(self.app.serving, personas)).personas
            )
        return view.master(decider or self.decider, runner=policy.runner)

    def _check_open(self) -> None:
        if self.stopping.is_set():
            raise ShuttingDown("the daemon is shutting down", hint="retry once it has restarted")

    async def _check_store(self) -> None:
        """Before a request that writes: a store damaged since the daemon opened it is found
        here, in the words a command in another process says it (``DamagedFile``: the file and
        the way out), and nothing more is written over it."""
        if isinstance(self.app.store, SQLiteStore):
            await self.app.store.verify()

    # ------------------------------------------------------------------ drivers
    def _spawn(self, task_id: str, work: Callable[[], Awaitable[RunResult]]) -> None:
        self._check_open()
        if self.driving(task_id):
            raise BadInput(
                f"task {task_id} is already being driven by the daemon",
                hint="answer its pending approval instead",
            )
        self._unpublished.pop(task_id, None)
        self._drivers[task_id] = asyncio.create_task(self._drive(task_id, work), name=task_id)

    async def _drive(self, task_id: str, work: Callable[[], Awaitable[RunResult]]) -> None:
        """Run ``work`` and announce how it ended (``RESULT_EVENT``) to whoever follows the task:
        a front end that started it waits for exactly this."""
        with structlog.contextvars.bound_contextvars(task_id=task_id):
            outcome: dict[str, Any]
            try:
                result = await work()
                log.info("daemon.task_stopped", status=result.status, error=result.error)
                if result.status == "budget_exhausted" and await self._cancelling.abort_if_asked(
                    task_id, actor=self.decider.actor
                ):
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
            await self._announce(task_id, outcome)

    async def _announce(self, task_id: str, outcome: dict[str, Any]) -> None:
        try:
            await self.app.bus.publish(task_id, RESULT_EVENT, outcome)
        except Exception:  # the task's state is persisted; the notice is handed over below
            log.exception("daemon.result_unpublished")
            self._unpublished[task_id] = outcome

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
                master = await self._master(policy_of(task))
            except (ConfigError, PersonaError) as err:
                log.warning("daemon.resume_skipped", task_id=task.id, error=str(err))
                continue
            self._spawn(task.id, partial(master.drive, task.id))
            resumed.append(task.id)
        log.info("daemon.resumed", count=len(resumed))
        self._reconciling = asyncio.create_task(self._reconcile_left(), name="reconcile")
        return resumed

    async def _reconcile_left(self) -> None:
        """Look up, in their providers' records, the calls left "≤" by tasks no drive will
        reconcile: those that ended while a record was still due, or whose last look a stop cut
        off. In the background, one task at a time; a failure leaves them "≤" for the next
        start."""
        try:
            for task_id in await self.app.store.tasks_with_estimates():
                if not self.driving(task_id):  # a drive reconciles its own task
                    await self.app.router.reconcile(task_id, last=True)
        except AgentfirmError as err:
            log.warning("daemon.reconcile_failed", error=str(err))

    async def _waits_no_more(self, task: Task, kind: ApprovalKind) -> bool:
        """Whether a task waiting on a ``kind`` question is driven at start: its question was
        answered while the daemon was down, or never asked. This host asks right after moving
        a task into a waiting status (its decider always writes the row), so a task it moved
        there with no question since was stopped between the two writes; driving it asks the
        question. A task someone else moved there may wait with no question by design (planned
        by ``agentfirm plan``, its budget declined under ``--yes``) and is left waiting."""
        answered = await self.decider.current(task.id, kind)
        if policy_of(task).auto_approve and (answered is None or answered.decision == "pending"):
            return True  # created with --yes: driving it answers its question (its policy)
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
        offline_latency_ms: str | None = None,
        personas_dir: str | None = None,
        yes: bool = False,
        allowed_tools: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Create and classify a task, then drive it in the background: it is planned (asking
        its clarifying questions, if any) and waits for its plan approval — or, with ``yes``,
        answers its own questions as ``--yes`` does. ``attachments``: files on this machine
        the task reads (copied at intake); ``actor``: who submits (the creation transition's
        actor; default the host's); the rest is the task's policy, written with it. Bad input
        and unservable configurations are refused before a task is written."""
        self._check_open()
        await self._check_store()
        given = parse_budget_nano(budget_usd)
        if allowed_tools:
            check_allowed(allowed_tools, servers_from_settings(self.settings))
        policy = TaskPolicy(
            offline=offline,
            offline_latency_ms=offline_latency_ms,
            runner=runner,
            budget_nano=given or usd_to_nano(self.settings.budget_usd),
            personas_dir=personas_dir,
            auto_approve=yes,
            allowed_tools=tuple(allowed_tools),
        )
        files = attachment_paths(attachments)
        intake = await self._master(
            policy,
            None
            if actor is None
            else StoreDecider(
                self.app.store, self.app.bus, redact=self.app.redactor.redact, actor=actor
            ),
        )
        # With a budget, the intake reserves against it: one ceiling for the whole task.
        task = await intake.intake(
            request, persona=persona, attachments=files, budget_nano=given or None, policy=policy
        )
        # Planned in the driver, not in the request: clarifying questions wait for answers that
        # come through the API, possibly from the very client that submitted the task.
        master = intake if actor is None else await self._master(policy)
        self._spawn(task.id, partial(master.drive, task.id))
        return {"task_id": task.id, "status": str(task.status), "persona": task.persona}

    async def decide(
        self,
        approval_id: str,
        decision: str | Decision,
        *,
        actor: str,
        notes: str = "",
        budget_usd: Decimal | None = None,
        modules: Collection[str] = (),
        answers: Mapping[str, str] | None = None,
    ) -> Approval:
        """Decide an approval (see ``ApprovalBook.decide``: a ``Decision``, or its word and
        fields); a task nobody is driving (asked before a restart) is resumed so the decision
        takes effect."""
        self._check_open()
        await self._check_store()
        if not isinstance(decision, Decision):
            decision = Decision(decision, notes, budget_usd, tuple(modules), answers)
        decided = await self.decider.decide(approval_id, decision, actor=actor)
        if not self.driving(decided.task_id):
            task = await self.app.store.get_task(decided.task_id)
            master = await self._master(policy_of(task))
            self._spawn(task.id, partial(master.drive, task.id))
        return decided

    async def resume(
        self, task_id: str, *, budget_usd: Decimal | None = None, offline: bool = False
    ) -> dict[str, Any]:
        """Drive a stopped task again (a task stopped for budget gets ``budget_usd`` as its new
        ceiling first; ``offline``: served offline from now on, restarts included — written to
        its policy). A task the daemon drives already (it resumed it at its start) is left to
        that driver: the caller follows it. ``after_seq``: the task's last event before; what
        follows is this run's, up to its ``RESULT_EVENT``."""
        self._check_open()
        await self._check_store()
        task = await self.app.store.get_task(task_id)
        check_not_ended(task, "resume")
        budget_nano = parse_budget_nano(budget_usd)
        driven = self.driving(task_id)
        if driven and budget_nano is not None:
            raise BadInput(
                f"task {task_id} is already being driven by the daemon",
                hint="answer its pending budget question instead: agentfirm approve "
                f"{task_id} --budget USD",
            )
        policy = policy_of(task)
        if offline and not policy.offline:
            policy = policy.model_copy(update={"offline": True})
            task.policy = policy
            await self.app.store.save_task(task)
        events = await self.app.bus.replay(task_id)
        if not driven:
            master = await self._master(policy)
            self._spawn(task_id, partial(master.drive, task_id, budget_nano=budget_nano))
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
        await self._check_store()
        reason = self.app.redactor.redact(reason)
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
        """Stop a task for good. A running build is sent ``abort`` and given the time its calls
        in flight may take to answer (``cancel_grace_s``) plus a little; once it answers, its
        driver ends the task ``aborted``. A build elsewhere (worker, kernel, Colab) that has not
        answered by then leaves the task ``aborting`` until it does or can no longer be
        spending (``_end_abort``). Otherwise the driver is cancelled (running modules go back
        to pending), open questions are marked aborted, reservations still held are released,
        and the task moves to ``aborted``."""
        await self._check_store()
        reason = self.app.redactor.redact(reason)
        return await self._cancelling.cancel(task_id, actor=actor, reason=reason)

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
            unpublished = None if self.driving(task_id) else self._unpublished.get(task_id)
            if unpublished is not None:  # not in the event log: it has no seq of its own
                yield Event(
                    id=new_id("ev"),
                    task_id=task_id,
                    seq=last,
                    type=RESULT_EVENT,
                    payload={**unpublished, UNRECORDED: True},
                )
                return
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
        self._cancelling.stop()
        if self._reconciling is not None:
            self._reconciling.cancel()
            await asyncio.wait([self._reconciling])
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
        for view in self._views.values():
            if view is not self.app and view._router is not None:
                await view._router.aclose()
        await self.app.close()
