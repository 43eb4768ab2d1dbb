"""Router overhead: the median time the Model Router adds to a call over the same SDK call made
directly, measured side by side against one loopback Anthropic fake that answers in 20 ms.

The router's path is the production one: key read through a ``SecretStore`` and reused for
``KEY_TTL_S`` (as ``build_providers`` sets it up), redaction, worst-case reservation and settlement
on a real SQLite store, list pricing with genai-prices, health bookkeeping and JSON logging to a
file. The fake runs in its own process, as a real provider is remote (in-process, its thread would
compete for the GIL with the router's worker threads). A third side, the Anthropic provider called
alone (its cached key, then the same SDK call), splits what the router adds from what the provider
adds. The order of the sides rotates every round so drift on a busy machine hits them alike.

    .venv/bin/python bench/router_overhead.py [--calls N] [--warmup N]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentfirm.log import configure_logging, reset_logging
from agentfirm.router.base import ChainEntry, Message, ProviderRequest
from agentfirm.router.pricing import Pricer
from agentfirm.router.providers._common import KEY_TTL_S
from agentfirm.router.providers.anthropic import AnthropicProvider, request_params
from agentfirm.router.router import Router
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

        sides = (via_sdk, via_provider, via_router)
        times: list[list[float]] = [[], [], []]
        try:
            for n in range(warmup + calls):
                # Rotate which side goes first: a busy spell hits each side alike.
                order = [(n + k) % len(sides) for k in range(len(sides))]
                measured = {side: await sides[side]() for side in order}
                if n >= warmup:
                    for side, elapsed in measured.items():
                        times[side].append(elapsed)
        finally:
            await direct.close()
            await router.aclose()
            await store.close()
            reset_logging()
    return times[0], times[1], times[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="measured calls on each side")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured calls on each side")
    args = parser.parse_args()
    sdk, alone, routed = asyncio.run(measure(args.calls, args.warmup))
    sdk_ms = statistics.median(sdk) * 1000
    alone_ms = statistics.median(alone) * 1000
    router_ms = statistics.median(routed) * 1000
    paired_ms = statistics.median(r - d for r, d in zip(routed, sdk, strict=True)) * 1000
    print(
        f"router overhead: Anthropic fake answering in {FAKE_LATENCY_S * 1000:.0f} ms, "
        f"{args.calls} calls each side, order rotating"
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
