"""Approvals (``ApprovalStore``) and the event log (``EventLog``) on any SQL backend."""

from __future__ import annotations

from collections.abc import Sequence

from agentfirm.domain.models import Approval, ApprovalDecision, Event, utcnow
from agentfirm.errors import BadInput, NotFound
from agentfirm.store.sql.access import TASKS_HINT, SqlAccess, no_task


class SqlApprovals(SqlAccess):
    """The ``ApprovalStore`` methods (see ``agentfirm.store.base``)."""

    async def create_approval(self, approval: Approval) -> None:
        d = self.dialect
        async with self._write() as tx:
            with d.refusals(
                missing=no_task(approval.task_id),
                taken=BadInput(f"approval {approval.id} already exists"),
            ):
                await tx.run(
                    "INSERT INTO approvals (id, task_id, kind, decision, actor, notes, payload,"
                    " created_at, decided_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        approval.id,
                        approval.task_id,
                        approval.kind,
                        approval.decision,
                        approval.actor,
                        approval.notes,
                        d.json(approval.payload),
                        d.time(approval.created_at),
                        d.opt_time(approval.decided_at),
                    ),
                )

    async def decide_approval(
        self, approval_id: str, decision: ApprovalDecision, *, actor: str, notes: str = ""
    ) -> Approval:
        if decision == "pending":
            raise BadInput(f"approval {approval_id}: 'pending' is not a decision")
        d = self.dialect
        async with self._write() as tx:
            rows = await tx.rows(
                f"SELECT * FROM approvals WHERE id = ?{d.for_update}", (approval_id,)
            )
            if not rows:
                raise NotFound(f"approval {approval_id} not found", hint=TASKS_HINT)
            current = d.load(Approval, rows[0])
            if current.decision != "pending":
                raise BadInput(
                    f"approval {approval_id} was already decided: {current.decision}"
                    f" by {current.actor}",
                    hint="a new request needs a new approval",
                )
            decided = current.model_copy(
                update={
                    "decision": decision,
                    "actor": actor,
                    "notes": notes,
                    "decided_at": utcnow(),
                }
            )
            await tx.run(
                "UPDATE approvals SET decision = ?, actor = ?, notes = ?, decided_at = ?"
                " WHERE id = ?",
                (decision, actor, notes, d.opt_time(decided.decided_at), approval_id),
            )
        return decided

    async def list_approvals(self, task_id: str) -> list[Approval]:
        rows = await self._fetch(
            "SELECT * FROM approvals WHERE task_id = ? ORDER BY created_at, id", (task_id,)
        )
        return [self.dialect.load(Approval, row) for row in rows]

    async def list_pending_approvals(self, task_ids: Sequence[str]) -> list[Approval]:
        if not task_ids:
            return []
        among, ids = self.dialect.any_of("task_id", task_ids)
        rows = await self._fetch(
            f"SELECT * FROM approvals WHERE decision = 'pending' AND {among}"
            " ORDER BY task_id, created_at, id",
            (ids,),
        )
        return [self.dialect.load(Approval, row) for row in rows]


class SqlEvents(SqlAccess):
    """The ``EventLog`` methods (see ``agentfirm.store.base``)."""

    async def record_event(self, event: Event) -> bool:
        d = self.dialect
        async with self._write() as tx:
            with d.refusals(missing=no_task(event.task_id)):
                inserted = await tx.run(
                    "INSERT INTO events (task_id, stream, seq, id, type, module_id, ts, payload)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (task_id, stream, seq) DO NOTHING",
                    (
                        event.task_id,
                        event.stream,
                        event.seq,
                        event.id,
                        event.type,
                        event.module_id,
                        d.time(event.ts),
                        d.json(event.payload),
                    ),
                )
        return inserted == 1

    async def list_events(self, task_id: str, *, after_seq: int = 0) -> list[Event]:
        rows = await self._fetch(
            "SELECT * FROM events WHERE task_id = ? AND stream = 'events' AND seq > ? ORDER BY seq",
            (task_id, after_seq),
        )
        return [self.dialect.load(Event, row) for row in rows]
