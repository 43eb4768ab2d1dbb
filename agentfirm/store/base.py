"""The ``Store`` protocol: the system of record. SQLite (embedded) and Postgres implement it; one
conformance suite tests both. Every method is atomic on its own."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from agentfirm.domain import (
    Approval,
    ApprovalDecision,
    Artifact,
    Budget,
    Event,
    LedgerEntry,
    ModuleRun,
    Task,
    TaskStatus,
    Transition,
)
from agentfirm.errors import BadInput


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


class Store(Protocol):
    async def open(self) -> None:
        """Connect and apply pending migrations."""

    async def close(self) -> None: ...

    # tasks and lifecycle
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
        move against ``master.lifecycle.ALLOWED`` and raises ``InvalidTransition`` otherwise."""

    async def list_transitions(self, task_id: str) -> list[Transition]: ...

    # modules and artifacts
    async def upsert_module_run(self, run: ModuleRun) -> None: ...

    async def list_module_runs(self, task_id: str) -> list[ModuleRun]:
        """In wave order, then module id."""

    async def save_artifact(self, artifact: Artifact, *, run: ModuleRun | None = None) -> None:
        """Insert; ``(task_id, module_id, version)`` is unique. ``run``: the module's row (saying
        it is done), written in the same transaction — a process killed in between would leave
        an output whose row says running, and the module would run again."""

    async def latest_artifacts(self, task_id: str) -> dict[str, Artifact]:
        """The highest version per module id."""

    # budget and ledger
    async def set_budget(self, task_id: str, ceiling_nano: int) -> Budget:
        """Create or change the ceiling (spent and reserved are kept)."""

    async def get_budget(self, task_id: str) -> Budget: ...

    async def reserve(self, task_id: str, call_id: str, amount_nano: int) -> bool:
        """Atomically reserve ``amount_nano`` if ``spent + reserved + amount <= ceiling``; False if
        it does not fit. A reservation is keyed by ``call_id``."""

    async def settle(self, call_id: str, entry: LedgerEntry) -> None:
        """In one transaction: drop the call's reservation, add ``entry.cost_nano`` to spent, insert
        the ledger row. ``entry.cost_nano`` must not exceed what was reserved (it is clamped to it
        and the clamp logged, so spend can never pass the ceiling). A call whose reservation is
        gone (released under a holder presumed dead but only slow) was paid all the same: its
        actual cost is booked and a warning logged — the ledger stays honest, even past the
        ceiling."""

    async def record_call(self, entry: LedgerEntry) -> None:
        """Insert a ledger row for a call that held no reservation (``budget_refused``) or whose
        reservation is released in the same breath (``error``: releases ``entry.call_id``'s
        reservation, if any). Its cost is booked as ``settle`` books it."""

    async def release_reservations(
        self, task_id: str, *, older_than: timedelta | None = None
    ) -> int:
        """Drop the reservations the task holds (left by a process that died mid-call) and
        return how many there were. ``older_than``: only those made longer ago than this — past
        the provider timeout a live holder has settled its call, so only a dead one's are left;
        without it every reservation, only for a task no live process is driving."""

    async def list_ledger(self, task_id: str) -> list[LedgerEntry]:
        """Oldest first."""

    # approvals
    async def create_approval(self, approval: Approval) -> None: ...

    async def decide_approval(
        self, approval_id: str, decision: ApprovalDecision, *, actor: str, notes: str = ""
    ) -> Approval:
        """Raise ``BadInput`` when the approval was already decided."""

    async def list_approvals(self, task_id: str) -> list[Approval]: ...

    async def list_pending_approvals(self, task_ids: Sequence[str]) -> list[Approval]:
        """The undecided approvals of these tasks, by task and oldest first, in one query
        (a list of tasks asks once, not once per task); unknown ids have none."""

    # events (the Master's durable copy of what came over the bus)
    async def record_event(self, event: Event) -> bool:
        """Insert unless ``(task_id, stream, seq)`` is already there; True when inserted."""

    async def list_events(self, task_id: str, *, after_seq: int = 0) -> list[Event]:
        """Events of the ``events`` stream with ``seq > after_seq``, in seq order."""

    # run leases: at most one live holder runs a task's build (agentfirm/worker.py)
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


class BooksInline(Protocol):
    """A store that can often make a budget booking this very instant, without suspending (the
    SQLite store, when its write lock is free). Each method books exactly as its async namesake
    would and returns True, or writes nothing and returns False — then the caller awaits the
    async method, which waits its turn. The router tries these first: a booking that never
    suspends needs no protection from a cancellation arriving half-way (``router.attempt``)."""

    def reserve_now(self, task_id: str, call_id: str, amount_nano: int) -> bool:
        """False also when it does not fit or there is no budget: ``reserve`` says which."""

    def settle_now(self, call_id: str, entry: LedgerEntry) -> bool: ...

    def record_call_now(self, entry: LedgerEntry) -> bool: ...
