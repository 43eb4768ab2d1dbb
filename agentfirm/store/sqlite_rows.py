"""SQLite rows → domain models: JSON text columns parsed, time columns made aware datetimes."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from agentfirm.domain import (
    Approval,
    Artifact,
    Budget,
    Event,
    LedgerEntry,
    ModuleRun,
    Task,
    TaskSpec,
    TaskStatus,
    Transition,
)
from agentfirm.store.sqlite_conn import from_db_time, to_db_time


def opt_from_db_time(text: str | None) -> datetime | None:
    return None if text is None else from_db_time(text)


def opt_to_db_time(at: datetime | None) -> str | None:
    return None if at is None else to_db_time(at)


def task_from_row(row: sqlite3.Row) -> Task:
    return Task(
        id=row["id"],
        request=row["request"],
        status=TaskStatus(row["status"]),
        persona=row["persona"],
        budget_nano=row["budget_nano"],
        spec=None if row["spec"] is None else TaskSpec.model_validate_json(row["spec"]),
        repo_path=row["repo_path"],
        deliverable_path=row["deliverable_path"],
        created_at=from_db_time(row["created_at"]),
        updated_at=from_db_time(row["updated_at"]),
    )


def transition_from_row(row: sqlite3.Row) -> Transition:
    return Transition(
        task_id=row["task_id"],
        from_status=None if row["from_status"] is None else TaskStatus(row["from_status"]),
        to_status=TaskStatus(row["to_status"]),
        actor=row["actor"],
        reason=row["reason"],
        at=from_db_time(row["at"]),
    )


def module_run_from_row(row: sqlite3.Row) -> ModuleRun:
    return ModuleRun.model_validate(
        {
            **dict(row),
            "depends_on": json.loads(row["depends_on"]),
            "started_at": opt_from_db_time(row["started_at"]),
            "finished_at": opt_from_db_time(row["finished_at"]),
        }
    )


def artifact_from_row(row: sqlite3.Row) -> Artifact:
    return Artifact.model_validate(
        {
            **dict(row),
            "content": json.loads(row["content"]),
            "created_at": from_db_time(row["created_at"]),
        }
    )


def budget_from_row(row: sqlite3.Row) -> Budget:
    return Budget(
        task_id=row["task_id"],
        ceiling_nano=row["ceiling_nano"],
        spent_nano=row["spent_nano"],
        reserved_nano=row["reserved_nano"],
    )


def ledger_entry_from_row(row: sqlite3.Row) -> LedgerEntry:
    fields = dict(row)
    del fields["seq"]
    return LedgerEntry.model_validate(
        {**fields, "simulated": bool(row["simulated"]), "at": from_db_time(row["at"])}
    )


def approval_from_row(row: sqlite3.Row) -> Approval:
    return Approval.model_validate(
        {
            **dict(row),
            "payload": json.loads(row["payload"]),
            "created_at": from_db_time(row["created_at"]),
            "decided_at": opt_from_db_time(row["decided_at"]),
        }
    )


def event_from_row(row: sqlite3.Row) -> Event:
    return Event.model_validate(
        {**dict(row), "payload": json.loads(row["payload"]), "ts": from_db_time(row["ts"])}
    )
