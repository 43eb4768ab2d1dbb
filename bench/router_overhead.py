"""Router overhead: the median time the Model Router adds to a call, in two settings.

Structured (the figure that matters: every module call is one): the offline provider at zero
latency, called alone and through the Router on a real SQLite store, with the output schema a
module sends (its output type's schema plus the research field, built afresh for every call as
``run_subagent`` builds it). The router's share is parsing and validating the reply against the
schema, reserving and settling the budget, pricing and redaction.

Over HTTP: the same SDK call made directly, measured side by side against one loopback Anthropic
fake that answers in 20 ms.

The router's path is the production one: key read through a ``SecretStore`` and reused for
``KEY_TTL_S`` (as ``build_providers`` sets it up), redaction, worst-case reservation and settlement
on a real SQLite store, list pricing with genai-prices, health bookkeeping and JSON logging to a
file. The fake runs in its own process, as a real provider is remote (in-process, its thread would
compete for the GIL with the router's worker threads). A third side, the Anthropic provider called
alone (its cached key, then the same SDK call), splits what the router adds from what the provider
adds. The order of the sides rotates every round so drift on a busy machine hits them alike.

    .venv/bin/python bench/router_overhead.py [--calls N] [--warmup N] [--structured-only]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentfirm.build_master.research import with_research_field
from agentfirm.log import configure_logging, reset_logging
from agentfirm.outputs.types import schema_for
from agentfirm.router.base import ChainEntry, Message, ProviderRequest
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers._common import KEY_TTL_S
from agentfirm.router.providers.anthropic import AnthropicProvider, request_params
from agentfirm.router.providers.offline import OfflineProvider
from agentfirm.router.router import Router
from agentfirm.runs.heap import settle_heap
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.http_fake import running
from tests.fakes.routing import funded_task

KEY = "sk-ant-api03-bench-key-000000000001"
MODEL = "claude-sonnet-4-6"
FAKE_LATENCY_S = 0.020
MESSAGES = (
    Message("system", "You are a specialist on a strategy consulting team."),
    Message("user", "Write the market-sizing module for electric cargo bikes in Europe."),
)
MAX_TOKENS = 1024
_T = TypeVar("_T")
OUTPUT_TYPE = "market_sizing"
STRUCTURED_MAX_TOKENS = 4096
STRUCTURED_TARGET_MS = 0.3


def _serve(conn: Connection) -> None:
    with running(AnthropicFake(base_delay_s=FAKE_LATENCY_S)) as fake:
        conn.send(fake.url)
        conn.recv()  # until the parent says stop


@contextmanager
def fake_in_child_process() -> Iterator[str]:
    """The fake's URL, served by a child process for the duration."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child,), daemon=True)
    process.start()
    try:
        yield str(parent.recv())
    finally:
        parent.send("stop")
        process.join(timeout=10)


def module_schema() -> dict[str, Any]:
    """The schema a sub-agent sends: a fresh dict every call, as ``run_subagent`` builds it."""
    return with_research_field(schema_for(OUTPUT_TYPE))


Timing = tuple[float, float]
"""One call's wall-clock and CPU (this thread's) seconds."""


async def measure_structured(calls: int, warmup: int) -> tuple[list[Timing], list[Timing]]:
    """Per-call times of the offline provider alone and through the Router, structured. CPU
    time is the steadier figure on a shared machine: with a provider that answers at once, the
    wall-clock time is CPU time plus whatever other processes took of it."""
    redactor = Redactor()
    with tempfile.TemporaryDirectory() as tmp:
        configure_logging(log_path=Path(tmp) / "bench.log", redactor=redactor)
        store = SQLiteStore(Path(tmp) / "bench.sqlite3")
        await store.open()
        provider = OfflineProvider()
        router = Router(
            chains={"execution": [ChainEntry("offline", MODEL, price_as="anthropic")]},
            providers={"offline": provider},
            pricer=Pricer(),
            store=store,
            redact=redactor.redact,
        )
        task_id = await funded_task(store, ceiling_nano=10**15)
        settle_heap()  # as the daemon does once it is up

        async def via_provider() -> Timing:
            request = ProviderRequest(
                MODEL,
                MESSAGES,
                STRUCTURED_MAX_TOKENS,
                "execution",
                output_schema=module_schema(),
                timeout_s=120.0,
            )
            started, cpu = time.perf_counter(), time.thread_time()
            await provider.complete(request)
            return time.perf_counter() - started, time.thread_time() - cpu

        async def via_router() -> Timing:
            schema = module_schema()
            started, cpu = time.perf_counter(), time.thread_time()
            result = await router.call(
                tier="execution",
                messages=MESSAGES,
                task_id=task_id,
                module_id="bench",
                output_schema=schema,
                max_tokens=STRUCTURED_MAX_TOKENS,
            )
            elapsed = time.perf_counter() - started, time.thread_time() - cpu
            if result.data is None or len(result.attempts) != 1:
                raise SystemExit("the offline reply did not validate at the first try")
            return elapsed

        times = await _alternate((via_provider, via_router), calls, warmup)
        await router.aclose()
        await store.close()
        reset_logging()
    return times[0], times[1]


async def _alternate(
    sides: Sequence[Callable[[], Awaitable[_T]]], calls: int, warmup: int
) -> list[list[_T]]:
    """Each side's measured times, the order of the sides rotating every round so a busy
    spell hits them alike."""
    times: list[list[_T]] = [[] for _ in sides]
    for n in range(warmup + calls):
        order = [(n + k) % len(sides) for k in range(len(sides))]
        measured = {side: await sides[side]() for side in order}
        if n >= warmup:
            for side, elapsed in measured.items():
                times[side].append(elapsed)
    return times


async def measure(calls: int, warmup: int) -> tuple[list[float], list[float], list[float]]:
    redactor = Redactor()
    with tempfile.TemporaryDirectory() as tmp, fake_in_child_process() as url:
        configure_logging(log_path=Path(tmp) / "bench.log", redactor=redactor)
        secrets = SecretStore(redactor, env={"ANTHROPIC_API_KEY": KEY})
        store = SQLiteStore(Path(tmp) / "bench.sqlite3")
        await store.open()
        provider = AnthropicProvider(get_secret=secrets.get, base_url=url, key_ttl_s=KEY_TTL_S)
        router = Router(
            chains={"execution": [ChainEntry("anthropic", MODEL)]},
            providers={"anthropic": provider},
            pricer=Pricer(),
            store=store,
            redact=redactor.redact,
        )
        from anthropic import AsyncAnthropic

        direct = AsyncAnthropic(api_key=KEY, base_url=url, max_retries=0)
        # The very request the provider sends, so every side moves the same bytes.
        request = ProviderRequest(MODEL, MESSAGES, MAX_TOKENS, "execution", timeout_s=120.0)
        params = request_params(request)
        task_id = await funded_task(store, ceiling_nano=10**15)

        async def via_sdk() -> float:
            started = time.perf_counter()
            await direct.messages.create(**params, timeout=120.0)
            return time.perf_counter() - started

        async def via_router() -> float:
            started = time.perf_counter()
            await router.call(
                tier="execution",
                messages=MESSAGES,
                task_id=task_id,
                module_id="bench",
                max_tokens=MAX_TOKENS,
            )
            return time.perf_counter() - started

        async def via_provider() -> float:
            started = time.perf_counter()
            await provider.complete(request)
            return time.perf_counter() - started

        try:
            times = await _alternate((via_sdk, via_provider, via_router), calls, warmup)
        finally:
            await direct.close()
            await router.aclose()
            await store.close()
            reset_logging()
    return times[0], times[1], times[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="measured calls on each side")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls on each side")
    parser.add_argument(
        "--structured-only", action="store_true", help="skip the HTTP (Anthropic fake) part"
    )
    args = parser.parse_args()
    report_structured(args.calls, args.warmup)
    if not args.structured_only:
        report_http(args.calls, args.warmup)


def report_structured(calls: int, warmup: int) -> None:
    alone, routed = asyncio.run(measure_structured(calls, warmup))
    print(
        f"router overhead, structured: offline provider at zero latency, SQLite store, "
        f"the {OUTPUT_TYPE} schema as a module sends it, {calls} calls each side"
    )
    for label, k in (("wall clock", 0), ("CPU", 1)):
        alone_ms = statistics.median(t[k] for t in alone) * 1000
        routed_ms = statistics.median(t[k] for t in routed) * 1000
        paired_ms = statistics.median(r[k] - a[k] for r, a in zip(routed, alone, strict=True))
        print(
            f"  {label:10s}  provider alone {alone_ms:6.3f} ms, via Router {routed_ms:6.3f} ms: "
            f"router adds {routed_ms - alone_ms:6.3f} ms (paired {paired_ms * 1000:.3f} ms), "
            f"ratio {routed_ms / alone_ms:.3f}"
        )
    print(f"  target: the router adds <= {STRUCTURED_TARGET_MS} ms per structured call")


def report_http(calls: int, warmup: int) -> None:
    sdk, alone, routed = asyncio.run(measure(calls, warmup))
    sdk_ms = statistics.median(sdk) * 1000
    alone_ms = statistics.median(alone) * 1000
    router_ms = statistics.median(routed) * 1000
    paired_ms = statistics.median(r - d for r, d in zip(routed, sdk, strict=True)) * 1000
    print(
        "router overhead over HTTP, unstructured: Anthropic fake answering in "
        f"{FAKE_LATENCY_S * 1000:.0f} ms, {calls} calls each side, order rotating"
    )
    print(f"  direct SDK call   median {sdk_ms:7.2f} ms")
    print(f"  provider alone    median {alone_ms:7.2f} ms   (cached key + the same SDK call)")
    print(f"  through Router    median {router_ms:7.2f} ms")
    print(
        f"  router adds       {router_ms - sdk_ms:7.2f} ms per call "
        f"(median of paired differences {paired_ms:.2f} ms; "
        f"{router_ms - alone_ms:.2f} ms over the provider alone)"
    )
    print(f"  ratio             {router_ms / sdk_ms:7.3f}   (target: < 1 ms added, ratio <= 1.10)")


if __name__ == "__main__":
    main()
