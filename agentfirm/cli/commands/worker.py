"""``agentfirm worker``: run Build Masters for approved tasks queued on Redis, on this machine.

Start as many as you like, on as many machines as you like; they share the work through the Redis
work queue and the budget through Postgres (``AGENTFIRM_RUNNER=worker`` on the Master's side sends
tasks their way). SIGTERM or Ctrl-C stops a worker cleanly: its unfinished tasks are handed back
and another worker resumes them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from agentfirm.cli.context import CliContext, OfflineOpt, context, env_for, fail, run_async

if TYPE_CHECKING:
    from rich.console import Console

    from agentfirm.runs.worker import WorkerOptions, WorkerReport


def worker(
    name: Annotated[
        str | None,
        typer.Option("--name", help="This worker's name in the queue (default: HOST-PID)."),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=64, help="Tasks run at once.")
    ] = 1,
    reclaim_after: Annotated[
        float,
        typer.Option(
            "--reclaim-after",
            min=0.1,
            metavar="SECONDS",
            help="Take over work whose worker has been silent this long (presumed dead).",
        ),
    ] = 60.0,
    max_tasks: Annotated[
        int | None,
        typer.Option("--max-tasks", min=1, help="Stop after running this many tasks."),
    ] = None,
    offline: OfflineOpt = False,
) -> None:
    """Run Build Masters for approved tasks queued on Redis (needs Postgres and Redis)."""
    from agentfirm.runs.worker import WorkerOptions, default_name, worker_problems

    env = env_for(offline)
    ctx = context(env)
    problems = worker_problems(ctx.settings)
    if problems:
        raise fail("worker: " + "; ".join(problems))
    options = WorkerOptions(
        name=name or default_name(),
        concurrency=concurrency,
        reclaim_after_s=reclaim_after,
        max_tasks=max_tasks,
    )
    run_async(_serve(ctx, env, options))


async def _serve(ctx: CliContext, env: dict[str, str], options: WorkerOptions) -> None:
    import asyncio
    import contextlib
    import signal

    from agentfirm.cli.output import console
    from agentfirm.runs.worker import serve
    from agentfirm.settings import mask_url

    settings = ctx.settings
    out = console()
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main.cancel)

    def started() -> None:
        out.print(
            f"worker {options.name}: taking tasks from {mask_url(settings.redis_url or '')}"
            f" ({options.concurrency} at a time)"
        )

    try:
        with contextlib.suppress(asyncio.CancelledError):
            await serve(
                settings,
                redactor=ctx.redactor,
                secrets=ctx.secrets,
                env=env,
                options=options,
                report=_printer(out),
                started=started,
            )
        out.print(f"worker {options.name}: stopped")
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _printer(out: Console) -> Callable[[WorkerReport], None]:
    def show(report: WorkerReport) -> None:
        run = f" (run {report.run_id})" if report.run_id else ""
        detail = f": {report.detail}" if report.detail else ""
        out.print(f"{report.kind} task {report.task_id}{run}{detail}")

    return show
