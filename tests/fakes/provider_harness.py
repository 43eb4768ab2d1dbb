"""What the provider integration tests share. Each test module runs one provider, on its real SDK,
against that provider's loopback fake: alone, and through a router on a real SQLite store whose
ledger rows it checks.

A module describes its provider once, as a ``ProviderUnderTest``, and takes its fixtures from it::

    GEMINI = ProviderUnderTest(name="gemini", key_env="GEMINI_API_KEY", ...)
    _fake_server, fake, keys, provider = provider_fixtures(GEMINI)

``store`` (a SQLite store) and the rewriting of this module's asserts, so that a failing ledger
check shows its values, come from ``tests/integration/conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pytest

from agentfirm.domain.models import LedgerEntry
from agentfirm.router.base import CallResult, Message, Provider, ProviderRequest
from agentfirm.store.base import Store
from tests.fakes.http_fake import Reply, running
from tests.fakes.provider_fake import ProviderFake
from tests.fakes.routing import CALL_TIMEOUT_S, router_for

# A scripted hang: far past any short timeout a test sets, so the reply cannot race the timeout
# on a loaded machine. Nobody waits it out: the client gives up, and stopping the fake wakes it.
HANG_S = 5.0
# The router's timeout where the first attempt hangs: short, as the test waits it out, yet long
# enough for the retry that follows to be answered on a loaded machine.
HANG_THEN_RETRY_TIMEOUT_S = 1.0

FakeT = TypeVar("FakeT", bound=ProviderFake)
ProviderT = TypeVar("ProviderT", bound=Provider)
SecretGetter = Callable[[str], str | None]


@dataclass(frozen=True)
class ProviderUnderTest(Generic[FakeT, ProviderT]):
    """One provider as its test module uses it: ``name`` (its chain and ledger name), the secret
    it reads, the model and messages its calls carry, how to start its fake and how to open it
    against that fake."""

    name: str
    key_env: str
    key: str
    model: str
    messages: tuple[Message, ...]
    start_fake: Callable[[], FakeT]
    open: Callable[[SecretGetter, FakeT], ProviderT]

    def request(self, **changes: Any) -> ProviderRequest:
        """A request for ``model`` with ``messages``, with a generous timeout unless
        ``changes`` sets one (only where a hang is scripted)."""
        fields: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "max_tokens": 512,
            "tier": "execution",
            "timeout_s": CALL_TIMEOUT_S,
        }
        return ProviderRequest(**{**fields, **changes})

    async def route(
        self,
        store: Store,
        provider: ProviderT,
        task_id: str,
        *,
        output_schema: dict[str, Any] | None = None,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> CallResult:
        """One execution-tier call with ``messages`` for ``task_id``, through a router whose
        only chain entry is this provider's ``model``."""
        router = router_for(
            store, {self.name: provider}, [f"{self.name}:{self.model}"], timeout_s=timeout_s
        )
        return await router.call(
            tier="execution",
            messages=self.messages,
            task_id=task_id,
            output_schema=output_schema,
        )

    def transient_faults(self, *, rate_limit_says: str) -> list[Any]:
        """The faults the router retries past, as ``pytest.param(fault, error, timeout_s)``: what
        the fake answers first (given the fake), how that attempt's ledger error starts, and the
        router's timeout. ``rate_limit_says``: the start of the fake's 429 message."""
        faults: list[tuple[str, Callable[[Any], Reply], str]] = [
            ("rate_limited", lambda f: f.rate_limited(1), f" returned 429: {rate_limit_says}"),
            ("server_error", lambda f: f.server_error(), " returned 500"),
            ("unavailable", lambda f: f.unavailable(), " returned 503"),
            # Timed out by the provider or by the router, whichever fires first.
            ("hang", lambda f: f.hang(HANG_S), ""),
            ("connection_reset", lambda f: f.connection_reset(), " connection failed"),
            ("malformed", lambda f: f.malformed(), " returned a malformed"),
        ]
        return [
            pytest.param(
                fault,
                # A hang is the one fault the provider bills: the request reached it.
                f"ProviderTimeout: {self.name}"
                if name == "hang"
                else f"RetryableProviderError: {self.name}{says}",
                HANG_THEN_RETRY_TIMEOUT_S if name == "hang" else CALL_TIMEOUT_S,
                id=name,
            )
            for name, fault, says in faults
        ]


def provider_fixtures(subject: ProviderUnderTest[FakeT, ProviderT]) -> tuple[Any, Any, Any, Any]:
    """The fixtures a provider test module binds, in this order: the fake, started once for the
    module; ``fake``, that fake with its script and records cleared before each test; ``keys``,
    the secrets the provider reads (a test may change them); ``provider``, opened against the
    fake and closed after the test."""

    @pytest.fixture(scope="module", name="_fake_server")
    def fake_server() -> Iterator[FakeT]:
        with running(subject.start_fake()) as server:
            yield server

    @pytest.fixture(name="fake")
    def fake(_fake_server: FakeT) -> FakeT:
        _fake_server.reset()
        return _fake_server

    @pytest.fixture(name="keys")
    def keys() -> dict[str, str]:
        return {subject.key_env: subject.key}

    @pytest.fixture(name="provider")
    async def provider(fake: FakeT, keys: dict[str, str]) -> AsyncIterator[ProviderT]:
        opened = subject.open(keys.get, fake)
        yield opened
        await opened.aclose()  # type: ignore[attr-defined]

    return fake_server, fake, keys, provider


async def assert_billed_once(
    store: Store,
    task_id: str,
    result: CallResult,
    *,
    provider: str,
    model: str,
    tokens: tuple[int, int, int],
    cost_nano: int,
) -> None:
    """``task_id``'s ledger is one real (not simulated) successful call by ``provider`` with
    ``tokens`` (input, cached input, output) at ``cost_nano``, which the result reports and the
    budget has spent, holding nothing back."""
    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.provider, row.model, row.simulated) == ("ok", provider, model, False)
    assert (row.input_tokens, row.cached_input_tokens, row.output_tokens) == tokens
    assert row.cost_nano == result.cost_nano == cost_nano
    budget = await store.get_budget(task_id)
    assert (budget.spent_nano, budget.reserved_nano) == (cost_nano, 0)


async def assert_failed_then_served(
    store: Store, task_id: str, *, error: str, served_cost_nano: int
) -> None:
    """``task_id``'s ledger is a failed attempt whose error starts with ``error``, then a
    successful one at ``served_cost_nano``; nothing stays reserved. The failed attempt is free,
    unless it timed out: then the provider got it and bills it, and it is booked at its
    reservation (``cancelled``, an upper bound)."""
    failed, served = await store.list_ledger(task_id)
    if error.startswith("ProviderTimeout"):
        assert (failed.outcome, failed.upper_bound, failed.output_tokens) == ("cancelled", True, 0)
    else:
        assert (failed.outcome, failed.cost_nano, failed.output_tokens) == ("error", 0, 0)
    assert failed.error is not None
    assert failed.error.startswith(error)
    assert (served.outcome, served.cost_nano) == ("ok", served_cost_nano)
    assert (await store.get_budget(task_id)).reserved_nano == 0


async def only_failed_row(store: Store, task_id: str) -> LedgerEntry:
    """``task_id``'s one ledger row, checked to be a failed attempt that cost nothing."""
    [row] = await store.list_ledger(task_id)
    assert (row.outcome, row.cost_nano) == ("error", 0)
    return row
