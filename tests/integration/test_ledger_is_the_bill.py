"""Property (issue 17, done-when 1 without the SIGKILL): sixteen calls at once through the real
OpenAI SDK against a loopback service that counts usage from each request (dense text,
Japanese, schemas) and bills on receipt, under ceilings that run out mid-way, with calls
cancelled at random moments. What the service billed never passes the ceiling, and the ledger is
exactly what it billed: a call cancelled before it was sent costs nothing and reaches nobody, one
cancelled after is answered within the grace and booked as the answer reports."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.router.base import Message
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.http_fake import running
from tests.fakes.metering import Rates
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.routing import funded_task, router_for

pytestmark = pytest.mark.integration

MODEL = "gpt-5-mini"
RATES = Rates(input=250, output=2_000, cached_input=25)  # its list prices, nano-dollars a token
SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "findings": {"type": "array"}},
    "required": ["summary", "findings"],
}
# Longer than any max_tokens: each answer is billed all the output it may have, as the
# reservation assumes at worst, so ceilings bite.
ANSWER = {"summary": "word " * 5_000, "findings": ["a", "b"]}
TEXTS = st.sampled_from(
    [
        "Summarise the quarter. " * 20,
        "四半期の売上を要約してください。関東地域の新規顧客獲得が寄与した。" * 12,
        "7f3a9c0e1b2d4f6a8c0e2b4d6f8a0c2e " * 25,  # dense: hex, few characters a token
    ]
)


@pytest.fixture(scope="module")
def service() -> Iterator[OpenAIFake]:
    # Each answer takes a little while, so cancellations land while requests are in flight.
    with running(OpenAIFake(rates={MODEL: RATES}, base_delay_s=0.02)) as fake:
        fake.respond_with(lambda request: fake.structured(ANSWER)(request))
        yield fake


async def scenario(
    service: OpenAIFake,
    directory: Path,
    share: float,
    calls: list[tuple[str, int, float | None]],
) -> tuple[int, list[tuple[str, int]]]:
    store = SQLiteStore(directory / "agentfirm.sqlite3")
    await store.open()
    provider = OpenAIProvider(get_secret={"OPENAI_API_KEY": "sk-test"}.get, base_url=service.url)
    try:
        # About ``share`` of sixteen worst cases: the ceiling runs out mid-way.
        ceiling = int(share * 16 * (2_000 * 4_000 + 250 * 4_000))
        task_id = await funded_task(store, ceiling)
        router = router_for(store, {"openai": provider}, [f"openai:{MODEL}"])

        async def one(text: str, max_tokens: int) -> None:
            await router.call(
                tier="execution",
                messages=[Message("user", text)],
                task_id=task_id,
                output_schema=SCHEMA,
                max_tokens=max_tokens,
            )

        running_calls = [asyncio.create_task(one(t, m)) for t, m, _ in calls]
        for task, (_, _, cancel_after) in zip(running_calls, calls, strict=True):
            if cancel_after is not None:
                asyncio.get_running_loop().call_later(cancel_after, task.cancel)
        outcomes = await asyncio.gather(*running_calls, return_exceptions=True)
        expected = (type(None), BudgetExceeded, ProviderError, asyncio.CancelledError)
        assert all(isinstance(o, expected) for o in outcomes), outcomes
        rows = [(r.outcome, r.cost_nano) for r in await store.list_ledger(task_id)]
        assert (await store.get_budget(task_id)).reserved_nano == 0
        return ceiling, rows
    finally:
        await provider.aclose()
        await store.close()


def quiet(service: OpenAIFake) -> None:
    """Return once the service has received nothing new for a while (at most a few seconds)."""
    seen, still = -1, 0
    for _ in range(100):
        now = len(service.requests)
        still = still + 1 if now == seen else 0
        if still >= 5:
            return
        seen = now
        time.sleep(0.02)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    share=st.floats(0.1, 1.2),
    calls=st.lists(
        st.tuples(
            TEXTS,
            st.integers(200, 4_000),
            st.one_of(st.none(), st.floats(0.0, 0.06)),
        ),
        min_size=16,
        max_size=16,
    ),
)
def test_the_bill_stays_under_the_ceiling_and_the_ledger_is_the_bill(
    service: OpenAIFake, share: float, calls: list[tuple[str, int, float | None]]
) -> None:
    service.reset()
    service.respond_with(lambda request: service.structured(ANSWER)(request))
    with tempfile.TemporaryDirectory() as directory:
        ceiling, rows = asyncio.run(scenario(service, Path(directory), share, calls))
    # A request a cancelled client had sent is billed when the service reads it: let every
    # request that left arrive before reading the bill (and before the next example clears it).
    quiet(service)
    billed = service.bill.nano
    assert billed <= ceiling
    assert sum(cost for _, cost in rows) == billed
    assert not [row for row in rows if row[0] == "cancelled" and row[1] > 0]  # no estimate
