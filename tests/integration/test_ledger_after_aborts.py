"""Property (issue 17, done-when 1, random aborts): a build of sixteen modules at once, through
the real OpenAI SDK against a loopback service that counts usage from each request and bills on
receipt, under a ceiling that may run out mid-way, aborted at a random moment. Whatever the
moment — modules mid-call, calls waiting at a closed budget gate, nothing started yet — the
calls already sent answer within the grace and are booked as answered: the ledger is exactly
what the service billed, no row is an estimate, and the bill stays under the ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfirm.build_master.budget_gate import BuildAborted
from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.calls import MAX_TOKENS
from agentfirm.domain.models import ModuleSpec, Plan, TaskSpec
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.store.sqlite import SQLiteStore
from tests.e2e.test_provider_faults_task import _succeed
from tests.fakes.http_fake import running
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.routing import funded_task, router_for
from tests.integration.test_ledger_is_the_bill import MODEL, RATES, quiet

pytestmark = pytest.mark.integration

MODULES = 16
WORST_NANO = RATES.output * MAX_TOKENS["execution"] + RATES.input * 8_000
"""About one module call's reservation (all of max_tokens out, a few thousand bytes in)."""


@pytest.fixture(scope="module")
def service() -> Iterator[OpenAIFake]:
    # Answers take a little while, so aborts land while requests are in flight.
    with running(OpenAIFake(rates={MODEL: RATES}, base_delay_s=0.05)) as fake:
        yield fake


def _spec(task_id: str) -> TaskSpec:
    modules = [
        ModuleSpec(id=f"part_{n:02d}", title=f"Part {n}", brief=f"Research and write up part {n}.")
        for n in range(MODULES)
    ]
    return TaskSpec(
        task_id=task_id,
        request="the market",
        persona="p",
        plan=Plan(modules=modules),
        budget_nano=0,
    )


async def scenario(
    service: OpenAIFake, directory: Path, share: float, abort_after_s: float
) -> tuple[int, list[tuple[str, int]]]:
    store, bus = SQLiteStore(directory / "store.db"), SQLiteLogBus(directory / "bus.db")
    await store.open()
    await bus.open()
    provider = OpenAIProvider(get_secret={"OPENAI_API_KEY": "sk-test"}.get, base_url=service.url)
    try:
        ceiling = int(share * MODULES * WORST_NANO)
        task_id = await funded_task(store, ceiling)
        router = router_for(store, {"openai": provider}, [f"openai:{MODEL}"])
        build = BuildMaster(
            store=store, bus=bus, router=router, max_concurrency=MODULES, max_escalations=0
        )
        building = asyncio.create_task(build.execute(_spec(task_id)))
        # The build hears aborts sent once it watches (an older one is the task's past): from
        # before its first module starts.
        while not any(e.type == "module.started" for e in await bus.replay(task_id)):  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await asyncio.sleep(abort_after_s)
        await bus.publish(task_id, "abort", {"reason": "stop"}, stream="control")
        with contextlib.suppress(BuildAborted):
            await building  # or it finished before the abort
        assert (await store.get_budget(task_id)).reserved_nano == 0
        rows = [(r.outcome, r.cost_nano) for r in await store.list_ledger(task_id)]
        return ceiling, rows
    finally:
        await provider.aclose()
        await bus.close()
        await store.close()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(share=st.floats(0.1, 1.2), abort_after_s=st.floats(0.0, 0.4))
def test_an_abort_at_any_moment_leaves_the_ledger_equal_to_the_bill(
    service: OpenAIFake, share: float, abort_after_s: float
) -> None:
    service.reset()
    service.respond_with(lambda request: _succeed(service, request))
    with tempfile.TemporaryDirectory() as directory:
        ceiling, rows = asyncio.run(scenario(service, Path(directory), share, abort_after_s))
    quiet(service)
    billed = service.bill.nano
    assert billed <= ceiling
    assert sum(cost for _, cost in rows) == billed
    assert not [row for row in rows if row[0] == "cancelled" and row[1] > 0]  # no estimate
