"""One conformance suite for every ``Store`` implementation.

A backend joins by subclassing ``StoreConformance`` in its own test module and giving the subclass a
``store`` fixture that yields an open store on an empty database (see
``tests/unit/test_store_conformance.py`` for SQLite, ``tests/integration/test_postgres_store.py``
for PostgreSQL). The module name does not start with ``test_``, so pytest collects the suite only
through those subclasses.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from agentfirm.domain.costs import call_row
from agentfirm.domain.models import (
    Approval,
    ApprovalKind,
    Artifact,
    Event,
    LedgerEntry,
    ModuleRun,
    ModuleSpec,
    ModuleStatus,
    Plan,
    Task,
    TaskSpec,
    TaskStatus,
)
from agentfirm.errors import BadInput, InvalidTransition, NotFound
from agentfirm.ids import new_id
from agentfirm.store.base import Store

S = TaskStatus


def make_task(**changes: object) -> Task:
    task_id = str(changes.pop("id", new_id("t")))
    spec = TaskSpec(
        task_id=task_id,
        request="compare three CRMs",
        persona="analyst",
        plan=Plan(modules=[ModuleSpec(id="research", depends_on=[])], waves=[["research"]]),
        budget_nano=2_000_000_000,
    )
    return Task.model_validate(
        {"id": task_id, "request": "compare three CRMs", "spec": spec, **changes}
    )


async def created(store: Store, **changes: object) -> Task:
    task = make_task(**changes)
    await store.create_task(task, actor="test")
    return task


async def walk(store: Store, task_id: str, *statuses: TaskStatus) -> None:
    for status in statuses:
        await store.transition(task_id, status, actor="test")


def entry(task_id: str, call_id: str, cost_nano: int, outcome: str = "ok") -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "call_id": call_id,
            "task_id": task_id,
            "tier": "execution",
            "provider": "offline",
            "model": "m",
            "cost_nano": cost_nano,
            "outcome": outcome,
        }
    )


async def task_with_budget(store: Store, ceiling_nano: int) -> str:
    task = await created(store)
    await store.set_budget(task.id, ceiling_nano)
    return task.id


def event(task_id: str, seq: int, stream: str = "events", type: str = "progress") -> Event:
    return Event.model_validate(
        {"id": new_id("ev"), "task_id": task_id, "stream": stream, "seq": seq, "type": type}
    )


LEASE_TTL = timedelta(minutes=5)


async def lease_expired(store: Store, task_id: str) -> None:
    """Wait for the task's lease to expire by the store's clock."""
    lease = await store.get_lease(task_id)
    while lease is not None and lease.live:
        await asyncio.sleep(0.001)
        lease = await store.get_lease(task_id)


class StoreConformance:
    """Every behaviour the ``Store`` protocol promises; subclasses provide the ``store`` fixture."""

    # --- tasks -----------------------------------------------------------------------------------

    async def test_created_task_reads_back_equal_with_aware_utc_times(self, store: Store) -> None:
        task = await created(store, persona="analyst", repo_path="/r", budget_nano=7)

        got = await store.get_task(task.id)

        assert got == task
        assert got.created_at.utcoffset() == timedelta(0)

    async def test_create_task_records_the_first_transition_from_none(self, store: Store) -> None:
        task = await created(store)

        [first] = await store.list_transitions(task.id)

        assert (first.from_status, first.to_status, first.actor) == (None, S.RECEIVED, "test")

    async def test_create_task_in_a_later_status_is_refused(self, store: Store) -> None:
        with pytest.raises(InvalidTransition):
            await store.create_task(make_task(status=S.EXECUTING), actor="test")

    async def test_get_missing_task_raises_not_found_pointing_at_tasks_list(
        self, store: Store
    ) -> None:
        with pytest.raises(NotFound) as caught:
            await store.get_task("t_missing")

        assert "agentfirm tasks list" in str(caught.value)

    async def test_list_tasks_is_newest_first_and_limited(self, store: Store) -> None:
        base = datetime(2025, 1, 1, tzinfo=UTC)
        ids = [(await created(store, created_at=base + timedelta(hours=h))).id for h in (1, 3, 2)]

        listed = await store.list_tasks(limit=2)

        assert [t.id for t in listed] == [ids[1], ids[2]]

    async def test_save_task_updates_fields_but_not_status(self, store: Store) -> None:
        task = await created(store)
        changed = task.model_copy(
            update={"status": S.COMPLETED, "deliverable_path": "/out.md", "persona": "lawyer"}
        )

        await store.save_task(changed)

        got = await store.get_task(task.id)
        assert (got.status, got.deliverable_path, got.persona) == (S.RECEIVED, "/out.md", "lawyer")

    async def test_save_missing_task_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.save_task(make_task())

    # --- transitions -----------------------------------------------------------------------------

    async def test_allowed_transition_moves_status_and_records_who_and_why(
        self, store: Store
    ) -> None:
        task = await created(store)

        done = await store.transition(task.id, S.CLASSIFIED, actor="master", reason="keywords")

        assert (await store.get_task(task.id)).status is S.CLASSIFIED
        assert (await store.list_transitions(task.id))[-1] == done
        assert (done.from_status, done.to_status, done.reason) == (
            S.RECEIVED,
            S.CLASSIFIED,
            "keywords",
        )

    async def test_refused_transition_raises_and_writes_nothing(self, store: Store) -> None:
        task = await created(store)

        with pytest.raises(InvalidTransition):
            await store.transition(task.id, S.COMPLETED, actor="master")

        assert (await store.get_task(task.id)).status is S.RECEIVED
        assert len(await store.list_transitions(task.id)) == 1

    async def test_final_status_allows_no_further_transition(self, store: Store) -> None:
        task = await created(store)
        await walk(store, task.id, S.ABORTED)

        with pytest.raises(InvalidTransition):
            await store.transition(task.id, S.FAILED, actor="master")

    async def test_transition_of_missing_task_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.transition("t_missing", S.CLASSIFIED, actor="master")

    async def test_transitions_list_in_the_order_they_happened(self, store: Store) -> None:
        task = await created(store)
        await walk(store, task.id, S.CLASSIFIED, S.CLARIFYING, S.CLARIFYING, S.PLANNED)

        moves = [(t.from_status, t.to_status) for t in await store.list_transitions(task.id)]

        assert moves == [
            (None, S.RECEIVED),
            (S.RECEIVED, S.CLASSIFIED),
            (S.CLASSIFIED, S.CLARIFYING),
            (S.CLARIFYING, S.CLARIFYING),
            (S.CLARIFYING, S.PLANNED),
        ]

    # --- module runs and artifacts ---------------------------------------------------------------

    async def test_upsert_module_run_inserts_then_replaces(self, store: Store) -> None:
        task = await created(store)
        run = ModuleRun(task_id=task.id, module_id="research", depends_on=["intake"])
        await store.upsert_module_run(run)
        finished = run.model_copy(
            update={
                "status": ModuleStatus.DONE,
                "attempts": 2,
                "provider": "offline",
                "finished_at": datetime(2025, 1, 1, tzinfo=UTC),
                "cost_nano": 5,
            }
        )

        await store.upsert_module_run(finished)

        assert await store.list_module_runs(task.id) == [finished]

    async def test_module_runs_list_in_wave_order_then_module_id(self, store: Store) -> None:
        task = await created(store)
        for module_id, wave in [("b", 1), ("z", 0), ("a", 1), ("c", 0)]:
            await store.upsert_module_run(
                ModuleRun(task_id=task.id, module_id=module_id, wave=wave)
            )

        runs = await store.list_module_runs(task.id)

        assert [(r.wave, r.module_id) for r in runs] == [(0, "c"), (0, "z"), (1, "a"), (1, "b")]

    async def test_module_run_of_missing_task_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.upsert_module_run(ModuleRun(task_id="t_missing", module_id="a"))

    async def test_latest_artifacts_holds_the_highest_version_per_module(
        self, store: Store
    ) -> None:
        task = await created(store)
        for module_id, version in [("a", 1), ("a", 3), ("a", 2), ("b", 1)]:
            await store.save_artifact(
                Artifact(
                    task_id=task.id,
                    module_id=module_id,
                    version=version,
                    output_type="notes",
                    content={"v": version, "nested": [1, {"x": None}]},
                )
            )

        latest = await store.latest_artifacts(task.id)

        assert {m: a.version for m, a in latest.items()} == {"a": 3, "b": 1}
        assert latest["a"].content == {"v": 3, "nested": [1, {"x": None}]}

    async def test_saving_an_existing_artifact_version_is_refused(self, store: Store) -> None:
        task = await created(store)
        artifact = Artifact(task_id=task.id, module_id="a", output_type="notes", content={})
        await store.save_artifact(artifact)

        with pytest.raises(BadInput):
            await store.save_artifact(artifact.model_copy(update={"content": {"other": 1}}))

    async def test_an_artifact_saved_with_its_module_run_writes_both_or_neither(
        self, store: Store
    ) -> None:
        task = await created(store)
        running = ModuleRun(task_id=task.id, module_id="a", status=ModuleStatus.RUNNING)
        await store.upsert_module_run(running)
        artifact = Artifact(task_id=task.id, module_id="a", output_type="notes", content={})
        done = running.model_copy(update={"status": ModuleStatus.DONE, "cost_nano": 5})

        await store.save_artifact(artifact, run=done)
        with pytest.raises(BadInput):  # the same version again: refused, the row untouched
            await store.save_artifact(artifact, run=done.model_copy(update={"cost_nano": 9}))

        assert (await store.latest_artifacts(task.id))["a"].version == 1
        assert await store.list_module_runs(task.id) == [done]

    # --- budget and ledger -----------------------------------------------------------------------

    async def test_set_budget_changes_the_ceiling_and_keeps_spent_and_reserved(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 30)
        await store.reserve(task_id, "c2", 20)
        await store.settle("c2", entry(task_id, "c2", 20))

        budget = await store.set_budget(task_id, 500)

        assert (budget.ceiling_nano, budget.spent_nano, budget.reserved_nano) == (500, 20, 30)
        assert await store.get_budget(task_id) == budget

    async def test_set_budget_also_sets_the_task_budget(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)

        await store.set_budget(task_id, 250)

        assert (await store.get_task(task_id)).budget_nano == 250

    async def test_budget_of_task_without_one_raises_not_found(self, store: Store) -> None:
        task = await created(store)

        with pytest.raises(NotFound):
            await store.get_budget(task.id)

    async def test_reserve_that_fits_is_held(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)

        assert await store.reserve(task_id, "c1", 100)
        assert (await store.get_budget(task_id)).reserved_nano == 100

    async def test_reserve_that_does_not_fit_is_refused_and_holds_nothing(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 60)

        assert not await store.reserve(task_id, "c2", 41)
        assert (await store.get_budget(task_id)).reserved_nano == 60

    async def test_reserving_twice_for_one_call_is_refused(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 10)

        with pytest.raises(BadInput):
            await store.reserve(task_id, "c1", 10)
        assert (await store.get_budget(task_id)).reserved_nano == 10

    async def test_concurrent_reserves_fill_the_ceiling_exactly(self, store: Store) -> None:
        task_id = await task_with_budget(store, 10 * 7)

        results = await asyncio.gather(*(store.reserve(task_id, f"c{i}", 7) for i in range(50)))

        budget = await store.get_budget(task_id)
        assert sum(results) == 10
        assert budget.spent_nano + budget.reserved_nano == budget.ceiling_nano

    async def test_concurrent_reserves_and_settles_never_pass_the_ceiling(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 10 * 7)
        observed: list[int] = []

        async def call(i: int) -> None:
            if await store.reserve(task_id, f"c{i}", 7):
                budget = await store.get_budget(task_id)
                observed.append(budget.spent_nano + budget.reserved_nano)
                await store.settle(f"c{i}", entry(task_id, f"c{i}", 7))

        await asyncio.gather(*(call(i) for i in range(50)))

        assert len(observed) == 10
        assert max(observed) <= 70
        assert (await store.get_budget(task_id)).spent_nano == 70

    async def test_a_cancelled_reserve_leaves_the_store_usable(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        # A read in flight first, so the reserve has to wait its turn: SQLite books inline when
        # its connection is idle, and an inline booking is over before anyone can cancel it.
        busy = asyncio.create_task(store.list_ledger(task_id))
        cancelled = asyncio.create_task(store.reserve(task_id, "c1", 10))
        await asyncio.sleep(0)  # one loop step: the reserve is now inside its transaction
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        await busy

        assert await store.reserve(task_id, "c2", 90)
        assert (await store.get_budget(task_id)).reserved_nano == 90

    async def test_settle_moves_the_cost_from_reserved_to_spent(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 40)

        await store.settle("c1", entry(task_id, "c1", 25))

        budget = await store.get_budget(task_id)
        assert (budget.spent_nano, budget.reserved_nano) == (25, 0)
        assert [e.cost_nano for e in await store.list_ledger(task_id)] == [25]

    async def test_settle_books_a_cost_above_the_reservation_in_full(self, store: Store) -> None:
        """The ledger is the provider's bill: never clamped to the reservation (it was, before
        issue 17, and the ledger under-reported what providers billed)."""
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 40)

        await store.settle("c1", entry(task_id, "c1", 90))

        budget = await store.get_budget(task_id)
        assert (budget.spent_nano, budget.reserved_nano) == (90, 0)
        assert [e.cost_nano for e in await store.list_ledger(task_id)] == [90]

    async def test_record_call_books_a_cancelled_call_at_its_reservation(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 40)

        await store.record_call(entry(task_id, "c1", 40, outcome="cancelled"))

        budget = await store.get_budget(task_id)
        assert (budget.spent_nano, budget.reserved_nano) == (40, 0)
        [row] = await store.list_ledger(task_id)
        assert (row.outcome, row.cost_nano, row.upper_bound) == ("cancelled", 40, True)

    async def test_record_call_releases_the_calls_reservation(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 40)

        await store.record_call(entry(task_id, "c1", 0, outcome="error"))

        budget = await store.get_budget(task_id)
        assert (budget.spent_nano, budget.reserved_nano) == (0, 0)
        assert [e.outcome for e in await store.list_ledger(task_id)] == ["error"]

    async def test_record_call_without_reservation_records_the_row_only(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)

        await store.record_call(entry(task_id, "c1", 0, outcome="budget_refused"))

        assert [e.call_id for e in await store.list_ledger(task_id)] == ["c1"]
        assert (await store.get_budget(task_id)).spent_nano == 0

    async def test_release_reservations_drops_every_hold_of_the_task_only(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 100)
        other_id = await task_with_budget(store, 100)
        for task, call_id, amount in [
            (task_id, "c1", 30),
            (task_id, "c2", 20),
            (other_id, "c3", 10),
        ]:
            await store.reserve(task, call_id, amount)

        released = await store.release_reservations(task_id)

        assert released == 2
        assert (await store.get_budget(task_id)).reserved_nano == 0
        assert (await store.get_budget(other_id)).reserved_nano == 10

    async def test_release_reservations_older_than_keeps_the_young_ones(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        other_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 30)
        await store.reserve(task_id, "c2", 20)
        await store.reserve(other_id, "c3", 10)

        kept = await store.release_reservations(task_id, older_than=timedelta(hours=1))
        assert kept == 0
        assert (await store.get_budget(task_id)).reserved_nano == 50
        released = await store.release_reservations(task_id, older_than=timedelta(0))

        assert released == 2
        assert (await store.get_budget(task_id)).reserved_nano == 0
        assert (await store.get_budget(other_id)).reserved_nano == 10
        await store.settle("c1", entry(task_id, "c1", 5))  # a late settle still books its cost
        assert (await store.get_budget(task_id)).spent_nano == 5

    async def test_release_books_a_dead_call_at_its_reservation_as_an_upper_bound(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 1_000)
        other_id = await task_with_budget(store, 1_000)
        await store.reserve(task_id, "done", 100)
        await store.settle("done", entry(task_id, "done", 60))
        sent = entry(task_id, "c1", 0, outcome="cancelled").model_copy(
            update={"module_id": "m1", "tier": "reasoning", "model": "big", "simulated": True}
        )
        await store.reserve(task_id, "c1", 300, for_call=sent)
        await store.reserve(task_id, "c2", 200, for_call=entry(task_id, "c2", 0, "cancelled"))
        await store.reserve(task_id, "bare", 50)  # no row kept: dropped at $0
        await store.reserve(other_id, "c3", 10, for_call=entry(other_id, "c3", 0, "cancelled"))

        released = await store.release_reservations(task_id)

        assert released == 3
        budget = await store.get_budget(task_id)
        assert (budget.reserved_nano, budget.spent_nano) == (0, 60 + 300 + 200)
        rows = await store.list_ledger(task_id)
        assert sorted(e.call_id for e in rows) == ["c1", "c2", "done"]
        assert sum(e.cost_nano for e in rows) == budget.spent_nano
        c1 = next(e for e in rows if e.call_id == "c1")
        assert (c1.outcome, c1.cost_nano, c1.upper_bound) == ("cancelled", 300, True)
        assert (c1.module_id, c1.tier, c1.provider, c1.model, c1.simulated) == (
            "m1",
            "reasoning",
            "offline",
            "big",
            True,
        )
        seqs = [seq for seq, _ in await store.ledger_page(task_id)]
        assert seqs == [1, 2, 3]
        groups, upper = await store.cost_groups(task_id)
        assert upper == 500
        assert sum(g.cost_nano for g in groups) == 560
        assert (await store.get_budget(other_id)).reserved_nano == 10
        assert await store.list_ledger(other_id) == []
        # Released once: a second release books nothing again.
        assert await store.release_reservations(task_id) == 0
        assert len(await store.list_ledger(task_id)) == 3

    async def test_a_dead_call_is_booked_only_once_marked_sent(self, store: Store) -> None:
        task_id = await task_with_budget(store, 1_000)
        sent = entry(task_id, "sent", 0, outcome="cancelled").model_copy(update={"module_id": "m1"})
        await store.reserve(task_id, "sent", 300)
        await store.reserve(task_id, "unsent", 200)  # its holder died before sending

        assert await store.mark_sent("sent", sent)
        assert not await store.mark_sent("nothing", entry(task_id, "nothing", 0, "cancelled"))
        assert await store.release_reservations(task_id) == 2

        rows = await store.list_ledger(task_id)
        assert [(e.call_id, e.module_id, e.cost_nano, e.upper_bound) for e in rows] == [
            ("sent", "m1", 300, True)
        ]
        budget = await store.get_budget(task_id)
        assert (budget.reserved_nano, budget.spent_nano) == (0, 300)

    async def test_release_older_than_books_only_the_old_dead_calls(self, store: Store) -> None:
        task_id = await task_with_budget(store, 1_000)
        await store.reserve(task_id, "c1", 300, for_call=entry(task_id, "c1", 0, "cancelled"))

        assert await store.release_reservations(task_id, older_than=timedelta(hours=1)) == 0
        assert await store.list_ledger(task_id) == []
        assert await store.release_reservations(task_id, older_than=timedelta(0)) == 1

        assert [(e.call_id, e.cost_nano) for e in await store.list_ledger(task_id)] == [("c1", 300)]
        assert (await store.get_budget(task_id)).spent_nano == 300

    async def test_a_late_settle_of_a_call_booked_dead_is_not_booked_twice(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 1_000)
        await store.reserve(task_id, "c1", 300, for_call=entry(task_id, "c1", 0, "cancelled"))
        await store.release_reservations(task_id)  # its holder presumed dead, but only slow

        with capture_logs() as logs:
            await store.settle("c1", entry(task_id, "c1", 120))
            await store.record_call(entry(task_id, "c1", 300, outcome="cancelled"))

        rows = await store.list_ledger(task_id)
        assert [(e.call_id, e.cost_nano, e.upper_bound) for e in rows] == [("c1", 300, True)]
        assert (await store.get_budget(task_id)).spent_nano == 300
        assert [x["event"] for x in logs].count("ledger.settle_after_booked_dead") == 2

    async def test_rebook_makes_an_upper_bound_exact_and_moves_spent_and_totals(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 1_000)
        await store.reserve(task_id, "done", 100)
        await store.settle("done", entry(task_id, "done", 60))
        for call_id in ("dead", "lost"):
            await store.reserve(
                task_id, call_id, 300, for_call=entry(task_id, call_id, 0, "cancelled")
            )
        await store.release_reservations(task_id)
        await store.record_call(entry(task_id, "cut", 200, outcome="cancelled"))
        assert [e.call_id for e in await store.estimated_calls(task_id)] == ["dead", "lost", "cut"]
        found = entry(task_id, "dead", 90, outcome="cancelled").model_copy(
            update={"input_tokens": 40, "cached_input_tokens": 10, "output_tokens": 5}
        )

        assert await store.rebook(found) == 300
        assert await store.rebook(entry(task_id, "cut", 0, outcome="cancelled")) == 200

        rows = {e.call_id: e for e in await store.list_ledger(task_id)}
        dead = rows["dead"]
        assert (dead.cost_nano, dead.input_tokens, dead.cached_input_tokens) == (90, 40, 10)
        assert (dead.output_tokens, dead.outcome, dead.upper_bound) == (5, "cancelled", False)
        assert (rows["cut"].cost_nano, rows["cut"].upper_bound) == (0, False)
        assert rows["lost"].upper_bound
        budget = await store.get_budget(task_id)
        assert (budget.spent_nano, budget.reserved_nano) == (60 + 90 + 300, 0)
        assert sum(e.cost_nano for e in rows.values()) == budget.spent_nano
        groups, upper = await store.cost_groups(task_id)
        assert (sum(g.cost_nano for g in groups), upper) == (450, 300)
        assert sum(g.calls for g in groups) == 4
        assert [e.call_id for e in await store.estimated_calls(task_id)] == ["lost"]
        assert await store.tasks_with_estimates() == [task_id]
        await store.rebook(entry(task_id, "lost", 0, outcome="cancelled"))
        assert await store.tasks_with_estimates() == []

    async def test_rebook_changes_nothing_but_an_upper_bound_of_that_task(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 1_000)
        other_id = await task_with_budget(store, 1_000)
        await store.reserve(task_id, "ok", 100)
        await store.settle("ok", entry(task_id, "ok", 60))
        await store.record_call(entry(task_id, "c1", 200, outcome="cancelled"))
        exact = entry(task_id, "c1", 50, outcome="cancelled").model_copy(update={"input_tokens": 7})

        assert await store.rebook(entry(task_id, "ok", 1)) is None  # answered: exact already
        assert await store.rebook(entry(task_id, "nothing", 1)) is None
        assert await store.rebook(entry(other_id, "c1", 1)) is None  # another task's
        assert await store.rebook(exact) == 200
        assert await store.rebook(exact) is None  # made exact once: never moved twice
        with pytest.raises(BadInput):
            await store.rebook(entry(task_id, "c1", -1, outcome="cancelled"))

        assert (await store.get_budget(task_id)).spent_nano == 60 + 50
        assert (await store.get_budget(other_id)).spent_nano == 0
        assert [e.cost_nano for e in await store.list_ledger(task_id)] == [60, 50]

    async def test_a_late_settle_of_a_rebooked_dead_call_is_not_booked_twice(
        self, store: Store
    ) -> None:
        task_id = await task_with_budget(store, 1_000)
        await store.reserve(task_id, "c1", 300, for_call=entry(task_id, "c1", 0, "cancelled"))
        await store.release_reservations(task_id)
        exact = entry(task_id, "c1", 120, outcome="cancelled").model_copy(
            update={"input_tokens": 30, "output_tokens": 4}
        )
        await store.rebook(exact)

        await store.settle("c1", entry(task_id, "c1", 120))  # its holder was only slow

        assert [(e.call_id, e.cost_nano) for e in await store.list_ledger(task_id)] == [("c1", 120)]
        assert (await store.get_budget(task_id)).spent_nano == 120

    async def test_release_reservations_of_a_task_holding_none_is_zero(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)

        assert await store.release_reservations(task_id) == 0

    async def test_ledger_reads_back_every_field(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 40)
        row = entry(task_id, "c1", 30).model_copy(
            update={"module_id": "m", "input_tokens": 5, "simulated": True, "error": None}
        )

        await store.settle("c1", row)

        assert await store.list_ledger(task_id) == [row]

    async def test_cost_groups_are_the_ledger_summed_without_reading_it(self, store: Store) -> None:
        task_id = await task_with_budget(store, 10_000)
        other = await task_with_budget(store, 10_000)
        rows = [
            (task_id, "a", "m1", 10, "ok"),
            (task_id, "b", "m2", 20, "ok"),
            (task_id, "c", "m1", 30, "cancelled"),
            (task_id, "d", None, 0, "error"),
            (other, "e", "m1", 99, "ok"),
        ]
        for task, call_id, module, cost, outcome in rows:
            row = entry(task, call_id, cost, outcome=outcome).model_copy(
                update={"module_id": module}
            )
            await store.record_call(row)

        groups, upper = await store.cost_groups(task_id)

        assert [(g.module_id, g.cost_nano, g.calls) for g in groups] == [
            ("m1", 40, 2),
            ("m2", 20, 1),
            (None, 0, 1),
        ]
        assert upper == 30

    async def test_ledger_pages_follow_one_another_to_the_end(self, store: Store) -> None:
        task_id = await task_with_budget(store, 10_000)
        for n in range(7):
            await store.record_call(entry(task_id, f"c{n}", n))

        seen, after = [], 0
        while page := await store.ledger_page(task_id, after_seq=after, limit=3):
            seen += [e.call_id for _, e in page]
            after = page[-1][0]

        assert seen == [e.call_id for e in await store.list_ledger(task_id)]
        assert len(seen) == 7

    async def test_ledger_sum_always_equals_spent(self, store: Store) -> None:
        task_id = await task_with_budget(store, 1_000)
        await store.reserve(task_id, "ok", 100)
        await store.settle("ok", entry(task_id, "ok", 60))
        await store.reserve(task_id, "over", 100)
        await store.settle("over", entry(task_id, "over", 150))
        await store.reserve(task_id, "err", 100)
        await store.record_call(entry(task_id, "err", 0, outcome="error"))
        await store.record_call(entry(task_id, "refused", 0, outcome="budget_refused"))
        await store.settle("never-reserved", entry(task_id, "never-reserved", 70))

        ledger = await store.list_ledger(task_id)
        budget = await store.get_budget(task_id)

        assert sum(e.cost_nano for e in ledger) == budget.spent_nano == 60 + 150 + 70
        assert budget.reserved_nano == 0

    async def test_settle_after_its_reservation_was_released_books_the_actual_cost(
        self, store: Store
    ) -> None:
        # A holder presumed dead but only slow: its reservation was released by the process that
        # took the task over, which then reserved the budget again. The slow call was paid all
        # the same, so the ledger says what it cost, even past the ceiling.
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "slow", 80)
        await store.release_reservations(task_id)
        await store.reserve(task_id, "new", 100)
        await store.settle("new", entry(task_id, "new", 90))

        with capture_logs() as logs:
            await store.settle("slow", entry(task_id, "slow", 70))

        budget = await store.get_budget(task_id)
        ledger = {e.call_id: e.cost_nano for e in await store.list_ledger(task_id)}
        assert ledger == {"new": 90, "slow": 70}
        assert (budget.spent_nano, budget.reserved_nano) == (160, 0)
        warned = [e for e in logs if e["event"] == "ledger.settle_without_reservation"]
        assert [(e["call_id"], e["cost_nano"]) for e in warned] == [("slow", 70)]

    async def test_settle_of_a_held_reservation_warns_of_nothing(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        await store.reserve(task_id, "c1", 40)

        with capture_logs() as logs:
            await store.settle("c1", entry(task_id, "c1", 25))

        assert [e for e in logs if e["log_level"] == "warning"] == []

    async def test_ledger_lists_oldest_first(self, store: Store) -> None:
        task_id = await task_with_budget(store, 100)
        base = datetime(2025, 1, 1, tzinfo=UTC)
        for call_id, minutes in [("late", 5), ("early", 1)]:
            row = entry(task_id, call_id, 0).model_copy(
                update={"at": base + timedelta(minutes=minutes)}
            )
            await store.record_call(row)

        assert [e.call_id for e in await store.list_ledger(task_id)] == ["early", "late"]

    # --- approvals -------------------------------------------------------------------------------

    async def test_decide_approval_records_decision_actor_and_time(self, store: Store) -> None:
        task = await created(store)
        await store.create_approval(
            Approval(id="a1", task_id=task.id, kind="plan", payload={"modules": 3})
        )

        decided = await store.decide_approval("a1", "approved", actor="ana", notes="go")

        assert await store.list_approvals(task.id) == [decided]
        assert (decided.decision, decided.actor, decided.notes) == ("approved", "ana", "go")
        assert decided.decided_at is not None
        assert decided.payload == {"modules": 3}

    async def test_an_approval_is_decided_only_once(self, store: Store) -> None:
        task = await created(store)
        await store.create_approval(Approval(id="a1", task_id=task.id, kind="budget"))
        await store.decide_approval("a1", "approved", actor="ana")

        with pytest.raises(BadInput):
            await store.decide_approval("a1", "rejected", actor="bob")

        [kept] = await store.list_approvals(task.id)
        assert (kept.decision, kept.actor) == ("approved", "ana")

    async def test_pending_approvals_of_many_tasks_come_in_one_list(self, store: Store) -> None:
        first, second, quiet = [await created(store) for _ in range(3)]
        base = datetime(2026, 1, 1, tzinfo=UTC)
        asked: list[tuple[str, Task, ApprovalKind, int]] = [
            ("a_1_late", first, "failure", 2),  # by time, not by id
            ("a_2_early", first, "review", 1),
            ("a_done", second, "plan", 0),
            ("a_budget", second, "budget", 3),
            ("a_other", quiet, "clarify", 0),
        ]
        for approval_id, task, kind, minutes in asked:
            at = base + timedelta(minutes=minutes)
            await store.create_approval(
                Approval(id=approval_id, task_id=task.id, kind=kind, created_at=at)
            )
        await store.decide_approval("a_done", "approved", actor="ana")

        pending = await store.list_pending_approvals([second.id, first.id, "t_missing"])

        by_task = sorted([first.id, second.id])
        expected = {first.id: ["a_2_early", "a_1_late"], second.id: ["a_budget"]}
        assert [a.id for a in pending] == [i for t in by_task for i in expected[t]]
        assert all(a.decision == "pending" for a in pending)
        assert await store.list_pending_approvals([]) == []
        assert await store.pending_kinds([second.id, first.id, "t_missing"]) == [
            (a.task_id, a.kind) for a in pending
        ]
        assert await store.pending_kinds([]) == []

    async def test_plain_reads_are_the_models_fields(self, store: Store) -> None:
        # ``tasks list`` and ``costs ID`` are built from plain rows (``Reads``): they must be
        # what the models would have said, times to the microsecond (and a whole second too).
        whole = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
        tasks = [
            await created(store, created_at=whole, persona=None),
            await created(store, persona="analyst", budget_nano=7),
        ]
        await walk(store, tasks[1].id, S.CLASSIFIED)
        await store.set_budget(tasks[1].id, 10_000)
        calls = [
            entry(tasks[1].id, "a", 10).model_copy(
                update={"module_id": "m", "at": whole, "input_tokens": 3, "cached_input_tokens": 1}
            ),
            # Booked at its reservation: no usage reported (with usage it would be exact).
            entry(tasks[1].id, "b", 30, outcome="cancelled").model_copy(update={"simulated": True}),
            entry(tasks[1].id, "c", 0, outcome="cancelled"),
        ]
        for call in calls:
            await store.record_call(call)

        heads = await store.task_heads(limit=-1)
        models = await store.list_tasks(limit=-1)
        assert [(h.id, h.request, h.status, h.persona, h.budget_nano) for h in heads] == [
            (t.id, t.request, t.status.value, t.persona, t.budget_nano) for t in models
        ]
        assert [h.created_at.isoformat() for h in heads] == [
            t.created_at.isoformat() for t in models
        ]
        assert len(await store.task_heads(limit=1)) == 1
        assert (await store.has_task(tasks[0].id), await store.has_task("t_missing")) == (
            True,
            False,
        )
        plain = await store.ledger_rows(tasks[1].id, limit=10)
        page = await store.ledger_page(tasks[1].id, limit=10)
        assert [seq for seq, _ in plain] == [seq for seq, _ in page]
        assert [call_row(row) for _, row in plain] == [call_row(e) for _, e in page]
        assert [row.upper_bound for _, row in plain] == [False, True, False]

    async def test_decide_missing_approval_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.decide_approval("a_missing", "approved", actor="ana")

    # --- events ----------------------------------------------------------------------------------

    async def test_record_event_dedupes_by_task_stream_and_seq(self, store: Store) -> None:
        task = await created(store)

        first = await store.record_event(event(task.id, 1, type="first"))
        again = await store.record_event(event(task.id, 1, type="duplicate"))
        other_stream = await store.record_event(event(task.id, 1, stream="control"))

        assert (first, again, other_stream) == (True, False, True)
        assert [e.type for e in await store.list_events(task.id)] == ["first"]

    async def test_list_events_is_in_seq_order_after_the_given_seq(self, store: Store) -> None:
        task = await created(store)
        for seq in (3, 1, 4, 2):
            await store.record_event(event(task.id, seq))

        events = await store.list_events(task.id, after_seq=1)

        assert [e.seq for e in events] == [2, 3, 4]

    # --- run leases ------------------------------------------------------------------------------

    async def test_a_free_lease_is_taken_and_reads_back_live(self, store: Store) -> None:
        task = await created(store)
        other = await created(store)

        taken = await store.acquire_lease(task.id, "w1", ttl=LEASE_TTL)
        lease = await store.get_lease(task.id)

        assert taken
        assert lease is not None
        assert (lease.task_id, lease.holder, lease.live) == (task.id, "w1", True)
        assert lease.acquired_at < lease.expires_at
        assert lease.expires_at.utcoffset() == timedelta(0)
        assert await store.get_lease(other.id) is None  # one lease per task

    async def test_a_live_lease_is_refused_to_another_holder(self, store: Store) -> None:
        task = await created(store)
        await store.acquire_lease(task.id, "w1", ttl=LEASE_TTL)
        before = await store.get_lease(task.id)

        taken = await store.acquire_lease(task.id, "w2", ttl=LEASE_TTL)

        assert not taken
        assert await store.get_lease(task.id) == before

    async def test_taking_ones_own_lease_again_renews_it(self, store: Store) -> None:
        task = await created(store)
        await store.acquire_lease(task.id, "w1", ttl=timedelta(seconds=10))
        first = await store.get_lease(task.id)

        again = await store.acquire_lease(task.id, "w1", ttl=LEASE_TTL)
        renewed = await store.get_lease(task.id)

        assert again
        assert first is not None
        assert renewed is not None
        assert renewed.acquired_at == first.acquired_at
        assert renewed.expires_at > first.expires_at

    async def test_an_expired_lease_is_taken_over_and_lost_to_its_old_holder(
        self, store: Store
    ) -> None:
        task = await created(store)
        await store.acquire_lease(task.id, "dead", ttl=timedelta(microseconds=1))
        await lease_expired(store, task.id)

        taken = await store.acquire_lease(task.id, "w2", ttl=LEASE_TTL)

        assert taken
        assert not await store.renew_lease(task.id, "dead", ttl=LEASE_TTL)
        assert not await store.release_lease(task.id, "dead")
        lease = await store.get_lease(task.id)
        assert lease is not None
        assert (lease.holder, lease.live) == ("w2", True)

    async def test_renewing_extends_only_the_holders_own_lease(self, store: Store) -> None:
        task = await created(store)
        await store.acquire_lease(task.id, "w1", ttl=timedelta(microseconds=1))
        await lease_expired(store, task.id)

        by_another = await store.renew_lease(task.id, "w2", ttl=LEASE_TTL)
        # expired, but nobody took it over: its holder may carry on
        by_holder = await store.renew_lease(task.id, "w1", ttl=LEASE_TTL)

        assert (by_another, by_holder) == (False, True)
        lease = await store.get_lease(task.id)
        assert lease is not None
        assert (lease.holder, lease.live) == ("w1", True)

    async def test_renewing_a_lease_nobody_holds_takes_nothing(self, store: Store) -> None:
        task = await created(store)

        assert not await store.renew_lease(task.id, "w1", ttl=LEASE_TTL)
        assert await store.get_lease(task.id) is None

    async def test_a_released_lease_is_free_for_another_holder_at_once(self, store: Store) -> None:
        task = await created(store)
        await store.acquire_lease(task.id, "w1", ttl=LEASE_TTL)

        by_another = await store.release_lease(task.id, "w2")
        by_holder = await store.release_lease(task.id, "w1")
        gone = await store.get_lease(task.id)
        again = await store.release_lease(task.id, "w1")
        taken = await store.acquire_lease(task.id, "w2", ttl=LEASE_TTL)

        assert (by_another, by_holder, gone, again, taken) == (False, True, None, False, True)

    async def test_of_many_takers_at_once_exactly_one_gets_the_lease(self, store: Store) -> None:
        task = await created(store)
        holders = [f"w{i}" for i in range(8)]

        taken = await asyncio.gather(
            *(store.acquire_lease(task.id, h, ttl=LEASE_TTL) for h in holders)
        )

        assert sum(taken) == 1
        lease = await store.get_lease(task.id)
        assert lease is not None
        assert lease.holder == holders[taken.index(True)]

    async def test_a_lease_on_a_missing_task_raises_not_found(self, store: Store) -> None:
        with pytest.raises(NotFound):
            await store.acquire_lease("t_missing", "w1", ttl=LEASE_TTL)

    @pytest.mark.parametrize(
        ("holder", "ttl"), [("", LEASE_TTL), ("w1", timedelta(0)), ("w1", -LEASE_TTL)]
    )
    async def test_a_lease_needs_a_holder_and_a_positive_ttl(
        self, store: Store, holder: str, ttl: timedelta
    ) -> None:
        task = await created(store)

        with pytest.raises(BadInput):
            await store.acquire_lease(task.id, holder, ttl=ttl)
        with pytest.raises(BadInput):
            await store.renew_lease(task.id, holder, ttl=ttl)
        assert await store.get_lease(task.id) is None
