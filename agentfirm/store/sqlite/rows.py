"""SQLite rows → domain models: JSON text columns parsed, time columns made aware datetimes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from agentfirm.domain.models import (
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
from agentfirm.domain.policy import TaskPolicy
from agentfirm.store.base import Lease
from agentfirm.store.sqlite.basics import from_db_time


def opt_from_db_time(text: str | None) -> datetime | None:
    return None if text is None else from_db_time(text)


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
        policy=TaskPolicy.model_validate_json(row["policy"]),
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
    fields.pop("seq", None)
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


def lease_from_row(row: sqlite3.Row) -> Lease:
    return Lease(
        task_id=row["task_id"],
        holder=row["holder"],
        acquired_at=from_db_time(row["acquired_at"]),
        expires_at=from_db_time(row["expires_at"]),
        live=bool(row["live"]),
    )


LOADERS: dict[type[Any], Callable[[sqlite3.Row], Any]] = {
    Approval: approval_from_row,
    Artifact: artifact_from_row,
    Budget: budget_from_row,
    Event: event_from_row,
    Lease: lease_from_row,
    LedgerEntry: ledger_entry_from_row,
    ModuleRun: module_run_from_row,
    Task: task_from_row,
    Transition: transition_from_row,
}
"""The loader of each model, by the model (``dialect.SQLITE.load``)."""
