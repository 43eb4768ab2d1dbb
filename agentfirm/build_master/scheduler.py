"""Dependency-driven scheduling of a module DAG.

A module starts the moment its own dependencies are done, never waiting for the rest of its wave,
with at most ``max_concurrency`` modules running at once. Waves (dependency levels) are computed
for display only.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Sequence

import structlog

from agentfirm.domain.graph import prepared_sorter
from agentfirm.domain.models import ModuleSpec

log = structlog.get_logger(__name__)


async def run_dag(
    modules: Sequence[ModuleSpec],
    run_one: Callable[[ModuleSpec], Awaitable[None]],
    *,
    max_concurrency: int,
    done: Collection[str] = frozenset(),
    contained: tuple[type[Exception], ...] = (),
) -> None:
    """Run ``run_one`` for every module not in ``done``, each as soon as its dependencies are done
    (modules in ``done`` count as done from the start and are never run), at most
    ``max_concurrency`` at once.

    Failure: an exception of a ``contained`` type fails only its module: its descendants are
    never started, everything else runs on, and the first such exception is raised once nothing
    more can run (the others are logged). Any other exception stops everything: nothing new is
    started, the modules still running are cancelled (and awaited), and it is re-raised on its
    own — not wrapped in an ``ExceptionGroup``. Cancelling ``run_dag`` cancels every running
    module. Raises ``BadInput`` for an invalid graph and ``ValueError`` for
    ``max_concurrency < 1``."""
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
    sorter = prepared_sorter(modules)
    by_id = {m.id: m for m in modules}
    order = {m.id: index for index, m in enumerate(modules)}
    finished: asyncio.Queue[tuple[str, Exception | None]] = asyncio.Queue()
    ready: deque[str] = deque()
    blocked: set[str] = set()
    failures: list[Exception] = []
    running = 0

    async def run(module_id: str) -> None:
        try:
            await run_one(by_id[module_id])
        except contained as error:
            finished.put_nowait((module_id, error))
        else:
            finished.put_nowait((module_id, None))

    try:
        async with asyncio.TaskGroup() as group:
            while sorter.is_active():
                for module_id in sorted(sorter.get_ready(), key=order.__getitem__):
                    if module_id in done:
                        sorter.done(module_id)
                    elif blocked.intersection(by_id[module_id].depends_on):
                        # Downstream of a failure: never started, and it blocks its own
                        # dependents in turn.
                        blocked.add(module_id)
                        sorter.done(module_id)
                    else:
                        ready.append(module_id)
                while ready and running < max_concurrency:
                    module_id = ready.popleft()
                    group.create_task(run(module_id), name=f"module:{module_id}")
                    running += 1
                if running == 0:
                    # Only already-done (or blocked) modules were released: ask for their
                    # dependents.
                    continue
                module_id, error = await finished.get()
                running -= 1
                if error is not None:
                    failures.append(error)
                    blocked.add(module_id)
                sorter.done(module_id)
    except BaseExceptionGroup as group_error:
        raise _first_error(group_error) from None
    if failures:
        for extra in failures[1:]:
            log.warning("dag.extra_failure", error=str(extra), error_type=type(extra).__name__)
        raise failures[0]


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    errors = leaf_errors(group)
    for extra in errors[1:]:
        log.warning("dag.extra_failure", error=str(extra), error_type=type(extra).__name__)
    return errors[0]


def leaf_errors(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions of a (nested) group, flattened, in the order they were raised."""
    leaves: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            leaves.extend(leaf_errors(error))
        else:
            leaves.append(error)
    return leaves
