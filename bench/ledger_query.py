"""Cost-summary query time over a 1,000,000-row ledger, SQLite next to PostgreSQL, in one run.

Fills each store's ``ledger`` table (1,000 tasks x 1,000 calls by default; the triggers of
migrations 0002 and 0004 keep the running totals as the rows go in) and times a cost summary (sums
and call counts by module, tier and provider):

- ``one task``: one task's summary (``agentfirm costs ID``), found among all the rows;
- ``whole ledger``: the same grouping over every task (a firm-wide summary);

each read from the running totals (``cost_totals`` per task, ``cost_rollup`` firm-wide: what the
stores answer with; on Postgres through ``PostgresStore.summarize_costs`` /
``summarize_all_costs``, pool and all) and, for comparison, aggregated from the ledger rows
themselves (``scan``). Target: 50 ms.

PostgreSQL is a throwaway server started on a free loopback port (as the integration tests do)
unless ``--pg-url`` names one; its database must be empty or already agentfirm's.

``--command``: instead, ``agentfirm costs ID --json`` for a 100,000-call task in a 1,000,000-row
SQLite ledger (10 tasks x 100,000 calls), side by side with a plain SQL SUM over that task
(issue 17: at most 3x). "Plain SQL SUM" is ``SELECT SUM(cost_nano) FROM ledger WHERE task_id =
?`` on the store's own file, with the store's own schema and indexes, timed two ways:

- in one process: ``api.views.task_costs`` (what the command runs: totals and the first 50
  calls) on an open store, against the SUM on its own open connection — the queries alone;
- process against process, which is what the issue's figure is: the real command, ``python -m
  agentfirm costs ID --json`` — in-process (``--no-daemon``: start-up, settings, opening the
  store and all), then through a daemon started on the same home (what a user gets while one
  runs) — against ``python -c 'import sqlite3, sys; db = sqlite3.connect(path);
  print(db.execute(SUM, (task,)).fetchone()[0])'`` run by the same interpreter: each a new
  process, in turn, the ratio taken round by round (median), with wall time and peak memory.

The file is filled once and then only read, as a user's ledger is between two tasks.

    python bench/ledger_query.py [--tasks 1000] [--calls 1000] [--repeat 20] [--pg-url URL]
    python bench/ledger_query.py --command [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import psycopg
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentfirm.store import db_admin
from agentfirm.store.postgres import PostgresStore
from agentfirm.store.postgres.conn import connect

TARGET_MS = 50.0

COLUMNS = (
    "task_id, seq, call_id, module_id, tier, provider, model, input_tokens, cached_input_tokens,"
    " output_tokens, cost_nano, latency_ms, outcome, simulated, error, at"
)
_GROUPS = "GROUP BY module_id, tier, provider ORDER BY MIN(at), MIN(seq)"
PG_TASK_SQL = (
    "SELECT module_id, tier, provider, SUM(cost_nano)::BIGINT AS cost_nano, COUNT(*) AS calls,"
    f" BOOL_OR(simulated) AS simulated FROM ledger WHERE task_id = %s {_GROUPS}"
)
PG_ALL_SQL = PG_TASK_SQL.replace(" WHERE task_id = %s", "")
SQLITE_TASK_SQL = (
    "SELECT module_id, tier, provider, SUM(cost_nano) AS cost_nano, COUNT(*) AS calls,"
    f" MAX(simulated) AS simulated FROM ledger WHERE task_id = ? {_GROUPS}"
)
SQLITE_ALL_SQL = SQLITE_TASK_SQL.replace(" WHERE task_id = ?", "")
SQLITE_TOTALS_TASK_SQL = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated FROM cost_totals"
    " WHERE task_id = ? ORDER BY first_at, first_seq"
)
SQLITE_TOTALS_ALL_SQL = (
    "SELECT module_id, tier, provider, cost_nano, calls, simulated FROM cost_rollup"
    " ORDER BY first_at, first_seq"
)

_PROVIDERS = (("anthropic", "claude-sonnet-4"), ("openai", "gpt-4.1"), ("google", "gemini-2.5"))
_TIERS = ("reasoning", "execution", "utility")


def ledger_rows(tasks: int, calls: int) -> Iterator[tuple[Any, ...]]:
    """Deterministic rows: each task has ``calls`` calls over 8 modules, 3 tiers, 3 providers."""
    rng = random.Random(0)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for t in range(tasks):
        task_id = f"t_{t:06d}"
        for seq in range(1, calls + 1):
            provider, model = _PROVIDERS[rng.randrange(3)]
            yield (
                task_id,
                seq,
                f"c_{t}_{seq}",
                f"m{rng.randrange(8)}",
                _TIERS[rng.randrange(3)],
                provider,
                model,
                rng.randrange(10_000),
                0,
                rng.randrange(2_000),
                rng.randrange(50_000_000),
                rng.randrange(5_000),
                "ok",
                False,
                None,
                start + timedelta(seconds=t * calls + seq),
            )


def fill_sqlite(path: Path, tasks: int, calls: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA synchronous = OFF")
        placeholders = ", ".join("?" * len(COLUMNS.split(",")))
        db.executemany(
            f"INSERT INTO ledger ({COLUMNS}) VALUES ({placeholders})",
            (
                (*row[:13], int(row[13]), row[14], row[15].isoformat(timespec="microseconds"))
                for row in ledger_rows(tasks, calls)
            ),
        )
        db.execute("ANALYZE")


def fill_postgres(url: str, tasks: int, calls: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY ledger ({COLUMNS}) FROM STDIN") as copy:
            for row in ledger_rows(tasks, calls):
                copy.write_row(row)
        conn.execute("VACUUM ANALYZE ledger")


async def timed(run: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    """Milliseconds per run, after two warm-up runs."""
    for _ in range(2):
        await run()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await run()
        times.append((time.perf_counter() - began) * 1000)
    return times


async def bench_sqlite(path: Path, task_id: str, repeat: int) -> dict[str, list[float]]:
    async with aiosqlite.connect(path) as db:

        def query(sql: str, *args: object) -> Callable[[], Awaitable[object]]:
            return lambda: db.execute_fetchall(sql, args)

        return {
            "one task": await timed(query(SQLITE_TOTALS_TASK_SQL, task_id), repeat),
            "whole ledger": await timed(query(SQLITE_TOTALS_ALL_SQL), repeat),
            "one task scan": await timed(query(SQLITE_TASK_SQL, task_id), repeat),
            "whole scan": await timed(query(SQLITE_ALL_SQL), repeat),
        }


async def bench_postgres(url: str, task_id: str, repeat: int) -> dict[str, list[float]]:
    conn = await connect(url)
    try:
        async with PostgresStore(url) as store:

            def scan(sql: str, *args: object) -> Callable[[], Awaitable[object]]:
                async def run() -> object:
                    return await (await conn.execute(sql, args)).fetchall()

                return run

            return {
                "one task": await timed(lambda: store.summarize_costs(task_id), repeat),
                "whole ledger": await timed(store.summarize_all_costs, repeat),
                "one task scan": await timed(scan(PG_TASK_SQL, task_id), repeat),
                "whole scan": await timed(scan(PG_ALL_SQL), repeat),
            }
    finally:
        await conn.close()


def report(store: str, rows: int, fill_s: float, results: dict[str, list[float]]) -> None:
    for query, times in results.items():
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        median = statistics.median(times)
        verdict = "" if query.endswith("scan") else ("  ok" if p95 <= TARGET_MS else "  MISS")
        print(
            f"{store:<10} {rows:>9,} rows  {query:<13} median {median:8.2f} ms"
            f"  p95 {p95:8.2f} ms  (fill {fill_s:.1f} s){verdict}"
        )


COMMAND_TASKS, COMMAND_CALLS = 10, 100_000
SUM_SQL = "SELECT SUM(cost_nano) FROM ledger WHERE task_id = ?"
COMMAND_TARGET = 3.0
PACKAGES = ("agentfirm", "daemon", "tui")


async def _in_process(db_path: Path, task_id: str, repeat: int) -> tuple[float, float]:
    """Median ms of ``task_costs`` (totals and the default 50 calls) and of the SUM."""
    from agentfirm.api.views import task_costs
    from agentfirm.store.sqlite import SQLiteStore

    store = SQLiteStore(db_path)
    await store.open()
    try:
        async with aiosqlite.connect(db_path) as db:
            view = await timed(lambda: task_costs(store, task_id), repeat)
            total = await timed(lambda: db.execute_fetchall(SUM_SQL, (task_id,)), repeat)
    finally:
        await store.close()
    return statistics.median(view), statistics.median(total)


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Wall ms of one run of ``argv`` and its peak resident memory in KiB. The peak is the one
    ``/usr/bin/time`` reads from its own child when it is installed (a child of this process,
    big after the fill, starts life counted at this process's size), else the kernel's figure
    for this process's child (an upper bound then)."""
    import os
    import shutil
    import subprocess

    timer = shutil.which("time", path="/usr/bin")
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak_file:
        wrapped = [timer, "-f", "%M", "-o", peak_file.name, *argv] if timer else argv
        began = time.perf_counter()
        pid = subprocess.Popen(wrapped, env={**os.environ, **env}, stdout=subprocess.DEVNULL).pid
        _, status, usage = os.wait4(pid, 0)
        ms = (time.perf_counter() - began) * 1000
        if status != 0:
            raise SystemExit(f"{argv} failed with status {status}")
        peak = peak_file.read().strip().splitlines()
    return ms, int(peak[-1]) if timer and peak else usage.ru_maxrss


def _paired_ms(
    a: list[str], b: list[str], env: dict[str, str], rounds: int
) -> tuple[float, float, float, int, int]:
    """``a`` and ``b`` run in turn (A B, B A, A B…: neither always goes first, so a busy spell
    on a shared machine hits both alike), after one warm-up run each: median ms of each, the
    median of the round-by-round ratios a/b, and each one's peak memory in KiB."""
    _run(a, env), _run(b, env)
    a_ms, b_ms, ratios, a_kib, b_kib = [], [], [], 0, 0
    for r in range(rounds):
        if r % 2:
            (tb, kb), (ta, ka) = _run(b, env), _run(a, env)
        else:
            (ta, ka), (tb, kb) = _run(a, env), _run(b, env)
        a_ms.append(ta)
        b_ms.append(tb)
        ratios.append(ta / tb)
        a_kib, b_kib = max(a_kib, ka), max(b_kib, kb)
    return (
        statistics.median(a_ms),
        statistics.median(b_ms),
        statistics.median(ratios),
        a_kib,
        b_kib,
    )


def bench_command(repeat: int) -> None:
    from agentfirm.domain.models import Task
    from agentfirm.store.sqlite import SQLiteStore

    rows = COMMAND_TASKS * COMMAND_CALLS
    task_id = f"t_{COMMAND_TASKS // 2:06d}"
    with tempfile.TemporaryDirectory(prefix="agentfirm-bench-") as tmp:
        home = Path(tmp) / "home"
        db_path = home / "data" / "agentfirm.db"
        db_path.parent.mkdir(parents=True)
        asyncio.run(db_admin.migrate(f"sqlite:///{db_path}"))

        async def tasks() -> None:
            store = SQLiteStore(db_path)
            await store.open()
            for t in range(COMMAND_TASKS):
                await store.create_task(Task(id=f"t_{t:06d}", request="bench"), actor="bench")
            await store.close()

        asyncio.run(tasks())
        began = time.perf_counter()
        fill_sqlite(db_path, COMMAND_TASKS, COMMAND_CALLS)
        print(
            f"costs command: {rows:,} ledger rows ({COMMAND_TASKS} tasks x {COMMAND_CALLS:,}"
            f" calls), filled in {time.perf_counter() - began:.1f} s"
        )
        view_ms, sum_ms = asyncio.run(_in_process(db_path, task_id, repeat))
        ratio = view_ms / sum_ms
        verdict = "ok" if ratio <= COMMAND_TARGET else "MISS"
        print(
            f"in process: task_costs {view_ms:.2f} ms, SUM {sum_ms:.2f} ms,"
            f" ratio {ratio:.2f} (target <= {COMMAND_TARGET:g})  {verdict}"
        )
        env = {"AGENTFIRM_HOME": str(home), "NO_COLOR": "1"}
        command = [sys.executable, "-m", "agentfirm", "costs", task_id, "--json"]
        plain = [
            sys.executable,
            "-c",
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
            f" print(db.execute({SUM_SQL!r}, (sys.argv[2],)).fetchone()[0])",
            str(db_path),
            task_id,
        ]
        # Byte-compiled first, as pip does at install (see bench/cli_startup.sh).
        root = Path(__file__).resolve().parent.parent
        _run([sys.executable, "-m", "compileall", "-q", *(str(root / d) for d in PACKAGES)], {})
        rounds = max(5, repeat // 2)
        in_process = [*command, "--no-daemon"]
        _versus("in-process (--no-daemon)", in_process, plain, env, rounds)
        daemon = [sys.executable, "-m", "agentfirm", "daemon"]
        _run([*daemon, "start"], env)
        try:
            _versus("through the daemon", command, plain, env, rounds)
        finally:
            _run([*daemon, "stop"], env)
        all_ms, all_kib = _run([*in_process, "--all"], env)
        print(
            f"agentfirm costs ID --json --all --no-daemon: {all_ms:.0f} ms"
            f" ({all_kib / 1024:.0f} MiB peak)"
        )


def _versus(
    label: str, command: list[str], plain: list[str], env: dict[str, str], rounds: int
) -> None:
    command_ms, plain_ms, ratio, command_kib, plain_kib = _paired_ms(command, plain, env, rounds)
    verdict = "ok" if ratio <= COMMAND_TARGET else "MISS"
    print(
        f"process against process, {label}: agentfirm costs ID --json {command_ms:.0f} ms"
        f" ({command_kib / 1024:.0f} MiB peak), python + SUM {plain_ms:.0f} ms"
        f" ({plain_kib / 1024:.0f} MiB peak): ratio {ratio:.2f} (target <= {COMMAND_TARGET:g},"
        f" median of {rounds} rounds)  {verdict}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=1000, help="ledger rows per task")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--pg-url", help="an existing PostgreSQL database to fill (default: own)")
    parser.add_argument("--command", action="store_true", help="time `agentfirm costs` instead")
    args = parser.parse_args()
    # The migrations' info lines would interleave with the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    if args.command:
        bench_command(args.repeat)
        return
    rows, task_id = args.tasks * args.calls, f"t_{args.tasks // 2:06d}"
    print(
        f"cost-summary query, {rows:,} ledger rows ({args.tasks} tasks x {args.calls} calls);"
        f" target p95 <= {TARGET_MS:.0f} ms"
    )

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentfirm-bench-")))
        sqlite_path = tmp / "agentfirm.sqlite3"
        asyncio.run(db_admin.migrate(f"sqlite:///{sqlite_path}"))
        began = time.perf_counter()
        fill_sqlite(sqlite_path, args.tasks, args.calls)
        fill_s = time.perf_counter() - began
        report("sqlite", rows, fill_s, asyncio.run(bench_sqlite(sqlite_path, task_id, args.repeat)))

        url = args.pg_url
        if url is None:
            from tests.integration.pg_server import throwaway_postgres

            server = stack.enter_context(throwaway_postgres())
            url = server.create_database()
        asyncio.run(db_admin.migrate(url))
        began = time.perf_counter()
        fill_postgres(url, args.tasks, args.calls)
        fill_s = time.perf_counter() - began
        report("postgres", rows, fill_s, asyncio.run(bench_postgres(url, task_id, args.repeat)))


if __name__ == "__main__":
    main()
