"""Tasks and their lifecycle, module runs and artifacts (``TaskStore``), on any SQL backend."""

from __future__ import annotations

from typing import Any

import structlog

from agentfirm.domain.lifecycle import check_transition
from agentfirm.domain.models import Artifact, ModuleRun, Task, TaskStatus, Transition
from agentfirm.errors import BadInput
from agentfirm.store.sql.access import TASKS_HINT, Dialect, SqlAccess, Tx, no_task

log = structlog.get_logger(__name__)

_MODULE_RUN_COLUMNS = (
    "wave",
    "tier",
    "depends_on",
    "status",
    "attempts",
    "provider",
    "model",
    "started_at",
    "finished_at",
    "cost_nano",
)
_UPSERT_MODULE_RUN_SQL = (
    f"INSERT INTO module_runs (task_id, module_id, {', '.join(_MODULE_RUN_COLUMNS)})"
    f" VALUES ({', '.join('?' * (len(_MODULE_RUN_COLUMNS) + 2))})"
    " ON CONFLICT (task_id, module_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _MODULE_RUN_COLUMNS)
)


class SqlTasks(SqlAccess):
    """The ``TaskStore`` methods (see ``agentfirm.store.base``)."""

    async def create_task(self, task: Task, *, actor: str) -> None:
        check_transition(task.id, None, task.status)
        async with self._write() as tx:
            with self.dialect.refusals(
                taken=BadInput(f"task {task.id} already exists", hint=TASKS_HINT)
            ):
                await tx.run(
                    "INSERT INTO tasks (id, request, status, persona, budget_nano, spec, repo_path,"
                    " deliverable_path, created_at, updated_at, policy)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (task.id, task.request, task.status.value, *_task_fields(self.dialect, task)),
                )
            await self._insert_transition(tx, Transition(
                task_id=task.id, from_status=None, to_status=task.status, actor=actor,
                reason="created",
            ))  # fmt: skip

    async def get_task(self, task_id: str) -> Task:
        rows = await self._fetch("SELECT * FROM tasks WHERE id = ?", (task_id,))
        if not rows:
            raise no_task(task_id)
        return self.dialect.load(Task, rows[0])

    async def list_tasks(self, *, limit: int = 100) -> list[Task]:
        sql = "SELECT * FROM tasks ORDER BY created_at DESC, id DESC"
        # A negative limit is no limit (as SQLite reads it; Postgres has no such spelling).
        rows = (
            await self._fetch(f"{sql} LIMIT ?", (limit,)) if limit >= 0 else await self._fetch(sql)
        )
        return [self.dialect.load(Task, row) for row in rows]

    async def save_task(self, task: Task) -> None:
        async with self._write() as tx:
            changed = await tx.run(
                "UPDATE tasks SET persona = ?, budget_nano = ?, spec = ?, repo_path = ?,"
                " deliverable_path = ?, created_at = ?, updated_at = ?, policy = ?, request = ?"
                " WHERE id = ?",
                (*_task_fields(self.dialect, task), task.request, task.id),
            )
            if changed == 0:
                raise no_task(task.id)

    async def transition(
        self, task_id: str, to: TaskStatus, *, actor: str, reason: str = ""
    ) -> Transition:
        async with self._write() as tx:
            # Locked (or under the database's write lock): this task's transitions, and their
            # seq numbers, serialise.
            rows = await tx.rows(
                f"SELECT status FROM tasks WHERE id = ?{self.dialect.for_update}", (task_id,)
            )
            if not rows:
                raise no_task(task_id)
            from_status = TaskStatus(rows[0]["status"])
            check_transition(task_id, from_status, to)
            done = Transition(
                task_id=task_id, from_status=from_status, to_status=to, actor=actor, reason=reason
            )
            await tx.run(
                "UPDATE tasks SET status = ?, updated_at = ? WHERE id = ?",
                (to.value, self.dialect.time(done.at), task_id),
            )
            await self._insert_transition(tx, done)
        log.info("task.transition", task_id=task_id, from_status=from_status, to=to, actor=actor)
        return done

    async def _insert_transition(self, tx: Tx, done: Transition) -> None:
        """The caller holds the task's row (or has just inserted it) in ``tx``."""
        await tx.run(
            "INSERT INTO transitions (task_id, seq, from_status, to_status, actor, reason, at)"
            " SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ?, ?"
            " FROM transitions WHERE task_id = ?",
            (
                done.task_id,
                None if done.from_status is None else done.from_status.value,
                done.to_status.value,
                done.actor,
                done.reason,
                self.dialect.time(done.at),
                done.task_id,
            ),
        )

    async def list_transitions(self, task_id: str) -> list[Transition]:
        rows = await self._fetch(
            "SELECT task_id, from_status, to_status, actor, reason, at FROM transitions"
            " WHERE task_id = ? ORDER BY seq",
            (task_id,),
        )
        return [self.dialect.load(Transition, row) for row in rows]

    async def upsert_module_run(self, run: ModuleRun) -> None:
        with self.dialect.refusals(missing=no_task(run.task_id)):
            await self._write_one(_UPSERT_MODULE_RUN_SQL, _module_run_params(self.dialect, run))

    async def list_module_runs(self, task_id: str) -> list[ModuleRun]:
        rows = await self._fetch(
            "SELECT * FROM module_runs WHERE task_id = ? ORDER BY wave, module_id", (task_id,)
        )
        return [self.dialect.load(ModuleRun, row) for row in rows]

    async def save_artifact(self, artifact: Artifact, *, run: ModuleRun | None = None) -> None:
        """Raise ``BadInput`` when that version already exists."""
        d = self.dialect
        taken = BadInput(
            f"artifact {artifact.module_id} v{artifact.version} of task {artifact.task_id}"
            " already exists",
            hint="save the new output as the next version",
        )
        async with self._write() as tx:
            with d.refusals(missing=no_task(artifact.task_id), taken=taken):
                await tx.run(
                    "INSERT INTO artifacts (task_id, module_id, version, output_type, content,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        artifact.task_id,
                        artifact.module_id,
                        artifact.version,
                        artifact.output_type,
                        d.json(artifact.content),
                        d.time(artifact.created_at),
                    ),
                )
                if run is not None:
                    await tx.run(_UPSERT_MODULE_RUN_SQL, _module_run_params(d, run))

    async def latest_artifacts(self, task_id: str) -> dict[str, Artifact]:
        rows = await self._fetch(
            "SELECT a.* FROM artifacts a JOIN (SELECT module_id, MAX(version) AS version"
            " FROM artifacts WHERE task_id = ? GROUP BY module_id) latest"
            " ON a.module_id = latest.module_id AND a.version = latest.version"
            " WHERE a.task_id = ?",
            (task_id, task_id),
        )
        return {row["module_id"]: self.dialect.load(Artifact, row) for row in rows}


def _task_fields(d: Dialect, task: Task) -> tuple[Any, ...]:
    return (
        task.persona,
        task.budget_nano,
        None if task.spec is None else d.json(task.spec.model_dump(mode="json")),
        task.repo_path,
        task.deliverable_path,
        d.time(task.created_at),
        d.time(task.updated_at),
        d.json(task.policy.model_dump(mode="json", exclude_defaults=True)),
    )


def _module_run_params(d: Dialect, run: ModuleRun) -> tuple[Any, ...]:
    return (
        run.task_id,
        run.module_id,
        run.wave,
        run.tier,
        d.json(run.depends_on),
        run.status.value,
        run.attempts,
        run.provider,
        run.model,
        d.opt_time(run.started_at),
        d.opt_time(run.finished_at),
        run.cost_nano,
    )
