"""Fixtures integration tests share: ``store``, a SQLite store; ``app``, an ``App`` whose builds
run on workers over a real Redis and Postgres, and ``queue``, its work queue. The server fixtures
those stand on come from ``tests/conftest.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.app import App
from agentfirm.bus.redis_work import RedisWorkQueue
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from agentfirm.store.sqlite import SQLiteStore

# The provider tests' ledger checks are asserts in a helper module: rewritten, a failure shows
# the values.
pytest.register_assert_rewrite("tests.fakes.provider_harness")


@pytest.fixture
def offline_latency_ms() -> str:
    """How long each offline LLM call of ``app`` takes (``AGENTFIRM_OFFLINE_LATENCY_MS``). A
    module whose test must catch a build mid-way overrides it with a slower one."""
    return "0"


@pytest.fixture
async def app(
    tmp_path: Path, redis_url: str, pg_url: str, offline_latency_ms: str
) -> AsyncIterator[App]:
    env = {
        "AGENTFIRM_HOME": str(tmp_path / "home"),
        "AGENTFIRM_REDIS_URL": redis_url,
        "AGENTFIRM_DATABASE_URL": pg_url,
        "AGENTFIRM_OFFLINE": "1",
        "AGENTFIRM_OFFLINE_LATENCY_MS": offline_latency_ms,
        "AGENTFIRM_RUNNER": "worker",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }
    redactor = Redactor()
    opened = await App.open(
        load_settings(env), redactor=redactor, secrets=SecretStore(redactor, env=env), env=env
    )
    yield opened
    await opened.close()


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[RedisWorkQueue]:
    work = RedisWorkQueue(redis_url)
    await work.open()
    yield work
    await work.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "agentfirm.sqlite3")
    await opened.open()
    yield opened
    await opened.close()
