"""The ``Store`` protocol: the system of record, the combination of one small protocol per concern.
SQLite (embedded) and Postgres implement it (one SQL body, ``agentfirm.store.sql``); one conformance
suite tests both. Every method is atomic on its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from agentfirm.domain.costs import CostGroup, LedgerRow
from agentfirm.domain.models import (
    Approval,
    ApprovalDecision,
    Artifact,
    Budget,
    CallRow,
    Event,
    LedgerEntry,
    ModuleRun,
    Task,
    TaskStatus,
    Transition,
)
from agentfirm.errors import BadInput
from agentfirm.store.sql.reads import TaskHead


class Lease(BaseModel):
    """Who runs a task's build now (``Store.acquire_lease``). ``live``: not expired, by the
    database's clock when it was read."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    holder: str
    acquired_at: datetime
    expires_at: datetime
    live: bool


def check_lease_terms(task_id: str, holder: str, ttl: timedelta | None = None) -> None:
    """``BadInput`` for a lease request no store can grant: an empty holder, a ttl that is not
    positive."""
    if not holder:
        raise BadInput(f"a lease on task {task_id} needs a holder")
    if ttl is not None and ttl <= timedelta(0):
        raise BadInput(f"a lease on task {task_id} needs a positive ttl, not {ttl}")


class TaskStore(Protocol):
    """Tasks and their lifecycle, module runs and artifacts."""

    async def create_task(self, task: Task, *, actor: str) -> None:
        """Insert the task and its first transition (``None → task.status``)."""

    async def get_task(self, task_id: str) -> Task:
        """Raise ``NotFound`` when there is no such task."""

    async def list_tasks(self, *, limit: int = 100) -> list[Task]:
        """Newest first."""

    async def save_task(self, task: Task) -> None:
        """Update every field except ``status`` (statuses change only through ``transition``)."""

    async def transition(
        self, task_id: str, to: TaskStatus, *, actor: str, reason: str = ""
    ) -> Transition:
        """Move the task to ``to`` and record the transition row, in one transaction. Validates the
        move against ``domain.lifecycle.ALLOWED`` and raises ``InvalidTransition`` otherwise."""

    async def list_transitions(self, task_id: str) -> list[Transition]: ...

    async def upsert_module_run(self, run: ModuleRun) -> None: ...

    async def list_module_runs(self, task_id: str) -> list[ModuleRun]:
        """In wave order, then module id."""

    async def save_artifact(self, artifact: Artifact, *, run: ModuleRun | None = None) -> None:
        """Insert; ``(task_id, module_id, version)`` is unique. ``run``: the module's row (saying
        it is done), written in the same transaction — a process killed in between would leave
        an output whose row says running, and the module would run again."""

    async def latest_artifacts(self, task_id: str) -> dict[str, Artifact]:
        """The highest version per module id."""


class BudgetLedger(Protocol):
    """Each task's budget (ceiling, spent, reserved) and the ledger of its paid calls."""

    async def set_budget(self, task_id: str, ceiling_nano: int) -> Budget:
        """Create or change the ceiling (spent and reserved are kept)."""

    async def get_budget(self, task_id: str) -> Budget: ...

    async def calls_in_flight(self, task_id: str) -> int:
        """How many calls of the task hold a reservation: sent, or about to be, and not yet
        booked (what a cancel waits for). 0 for a task without a budget."""

    async def reserve(
        self,
        task_id: str,
        call_id: str,
        amount_nano: int,
        *,
        for_call: CallRow | None = None,
    ) -> bool:
        """Atomically reserve ``amount_nano`` if ``spent + reserved + amount <= ceiling``; False if
        it does not fit. A reservation is keyed by ``call_id``. ``for_call``: the call's ledger
        row (its module, tier, provider, model and simulated are kept with the reservation), for
        ``release_reservations`` to book should the holder die mid-call."""

    async def mark_sent(self, call_id: str, for_call: CallRow) -> bool:
        """Say that ``call_id``'s request is about to leave: its reservation takes the call's
        ledger row ``for_call`` (as ``reserve(for_call=…)`` gives it at once), so should the
        holder die from now on, ``release_reservations`` books it at its reservation. Until
        then a dead holder's reservation was never sent and is dropped at $0. False when the
        call holds no reservation (nothing is marked)."""

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        """In one transaction: drop the call's reservation, add ``entry.cost_nano`` to spent, insert
        the ledger row. ``entry.cost_nano`` is booked as it is, never clamped to what was
        reserved: the ledger is what the provider billed (a cost above the reservation is the
        router's to announce, ``budget.overrun``). A call whose reservation is gone (released
        under a holder presumed dead but only slow) was paid all the same: its actual cost is
        booked and a warning logged — the ledger stays honest, even past the ceiling."""

    async def record_call(self, entry: LedgerEntry) -> None:
        """Insert a ledger row for a call that held no reservation (``budget_refused``) or whose
        reservation is released in the same breath (``error``: releases ``entry.call_id``'s
        reservation, if any). Its cost is booked as ``settle`` books it."""

    async def release_reservations(
        self, task_id: str, *, older_than: timedelta | None = None
    ) -> int:
        """Release the reservations the task holds (left by a process that died mid-call) and
        return how many there were. One that carries its call's row (``reserve(for_call=…)``
        or ``mark_sent``) is taken as sent (the router marks it right before it sends, and the
        provider bills what it received): it is booked in the same transaction, a ledger row at
        its reservation, ``cancelled``, an upper bound (``LedgerEntry.upper_bound``), spent on
        the budget. One without was never sent: dropped at $0. ``older_than``: only those made
        longer ago than this — past the provider timeout a live holder has settled its call, so
        only a dead one's are left; without it every reservation, only for a task no live
        process is driving."""

    async def tasks_with_estimates(self) -> list[str]:
        """The ids of the tasks that have rows booked at their reservation ("≤"), in id
        order: what a reconciliation at start looks at (a task ended meanwhile has no drive
        left to do it)."""

    async def estimated_calls(self, task_id: str) -> list[LedgerEntry]:
        """The task's rows booked at their reservation (``LedgerEntry.upper_bound``: sent,
        abandoned, no usage reported), in ledger order: what ``rebook`` may make exact."""

    async def rebook(self, entry: LedgerEntry) -> int | None:
        """Book ``entry.call_id``'s upper-bound row of ``entry.task_id`` at what the provider
        says it billed after all: ``entry``'s token counts and cost (0 tokens and $0: the
        provider has no record of the call). In one transaction the row takes them and the
        budget's spent moves by the difference, so the ledger still sums to spent and the
        running totals follow (by trigger). Outcome and error stay (``cancelled``: the caller
        gave up on it), so a holder presumed dead but only slow still books nothing twice.
        Returns the cost the row had (its reservation), or None when there is no such row or it
        is exact already (rebooked meanwhile): nothing was changed then."""

    async def list_ledger(self, task_id: str) -> list[LedgerEntry]:
        """Oldest first."""

    async def ledger_page(
        self, task_id: str, *, after_seq: int = 0, limit: int = 500
    ) -> list[tuple[int, LedgerEntry]]:
        """Up to ``limit`` ledger rows with a seq above ``after_seq``, oldest first, each with
        its seq: pages whose cost does not grow with the ledger."""


class Reads(Protocol):
    """What front ends show (``agentfirm.api.views``), as plain rows no model validates: read
    by the store, and by a plain reader of the SQLite file in a process that loads no pydantic
    (``agentfirm.store.sqlite.reader``)."""

    async def task_heads(self, *, limit: int = 100) -> list[TaskHead]:
        """The tasks as ``list_tasks`` gives them (newest first; a negative limit is none),
        without their spec or policy."""

    async def has_task(self, task_id: str) -> bool: ...

    async def pending_kinds(self, task_ids: Sequence[str]) -> list[tuple[str, str]]:
        """``(task_id, kind)`` of each of these tasks' undecided approvals, by task and oldest
        first (``list_pending_approvals``, their kinds alone)."""

    async def cost_groups(self, task_id: str) -> tuple[list[CostGroup], int]:
        """The task's running cost totals per module x tier x provider (in order of first
        appearance on the ledger, kept by trigger with every row) and the nano-dollars of them
        booked as upper bounds (``cancelled`` calls): a summary without reading the ledger."""

    async def ledger_rows(
        self, task_id: str, *, after_seq: int = 0, limit: int = 500
    ) -> list[tuple[int, LedgerRow]]:
        """``ledger_page``'s rows, as plain rows."""


class ApprovalStore(Protocol):
    """Human decisions asked for and given (plans, budgets, spend)."""

    async def create_approval(self, approval: Approval) -> None: ...

    async def decide_approval(
        self, approval_id: str, decision: ApprovalDecision, *, actor: str, notes: str = ""
    ) -> Approval:
        """Raise ``BadInput`` when the approval was already decided."""

    async def list_approvals(self, task_id: str) -> list[Approval]: ...

    async def list_pending_approvals(self, task_ids: Sequence[str]) -> list[Approval]:
        """The undecided approvals of these tasks, by task and oldest first, in one query
        (a list of tasks asks once, not once per task); unknown ids have none."""


class EventLog(Protocol):
    """The Master's durable copy of what came over the bus."""

    async def record_event(self, event: Event) -> bool:
        """Insert unless ``(task_id, stream, seq)`` is already there; True when inserted."""

    async def list_events(self, task_id: str, *, after_seq: int = 0) -> list[Event]:
        """Events of the ``events`` stream with ``seq > after_seq``, in seq order."""


class RunLeases(Protocol):
    """Run leases: at most one live holder runs a task's build (agentfirm/runs/worker.py)."""

    async def acquire_lease(self, task_id: str, holder: str, *, ttl: timedelta) -> bool:
        """Take the task's lease for ``holder`` until ``ttl`` from now, in one atomic statement:
        when nobody holds it, when its holder let it expire, or when ``holder`` holds it already
        (renewed). False while another holder's lease is live. Expiry is judged by the
        database's clock, so holders on machines whose clocks disagree still agree on it. Raises
        ``NotFound`` for a missing task, ``BadInput`` for an empty holder or a ttl that is not
        positive."""

    async def renew_lease(self, task_id: str, holder: str, *, ttl: timedelta) -> bool:
        """Extend ``holder``'s lease to ``ttl`` from now, even if it expired meanwhile, as long as
        nobody took it over. False when the lease is not ``holder``'s any more (taken over after
        it expired, or released): the work it covered must stop."""

    async def release_lease(self, task_id: str, holder: str) -> bool:
        """Give up ``holder``'s lease so another holder may take it at once; False when it was
        not ``holder``'s (already released, or taken over)."""

    async def get_lease(self, task_id: str) -> Lease | None:
        """The task's lease, live or expired; None when nobody holds it."""


class Store(TaskStore, BudgetLedger, ApprovalStore, EventLog, RunLeases, Reads, Protocol):
    """The whole system of record. A caller that needs one concern may type against its own
    protocol (``TaskStore``, ``BudgetLedger``, ``ApprovalStore``, ``EventLog``, ``RunLeases``,
    ``Reads``)."""

    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...


class BooksInline(Protocol):
    """A store that can often make a budget booking this very instant, without suspending (the
    SQLite store, when its write lock is free). Each method books exactly as its async namesake
    would and returns True, or writes nothing and returns False — then the caller awaits the
    async method, which waits its turn. The router tries these first: a booking that never
    suspends needs no protection from a cancellation arriving half-way (``router.attempt``)."""

    def reserve_now(
        self,
        task_id: str,
        call_id: str,
        amount_nano: int,
        *,
        for_call: CallRow | None = None,
    ) -> bool:
        """False also when it does not fit or there is no budget: ``reserve`` says which."""

    def mark_sent_now(self, call_id: str, for_call: CallRow) -> bool | None:
        """``mark_sent`` this instant: its answer, or None when nothing was written."""

    def settle_now(self, call_id: str, entry: LedgerEntry) -> bool: ...

    def record_call_now(self, entry: LedgerEntry) -> bool: ...
