"""The daemon checks its store before each request that writes (issue 21 item 6), but runs the
full check only when something else changed the file: its own writes between two requests are
no reason to read every page again (about a second on a year's ledger)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentfirm.errors import DamagedFile
from tests.integration.test_daemon_api import REQUEST, _asked_on_bus, _host, _settings
from tests.sqlite_checks import tear

pytestmark = pytest.mark.integration


async def test_requests_that_write_check_the_store_only_after_someone_else_wrote_it(
    tmp_path: Path, quick_checks: list[str]
) -> None:
    checks = quick_checks
    settings = _settings(tmp_path / "home")
    host = await _host(settings)  # checked as it opens
    try:
        checks.clear()
        for _ in range(2):
            task_id = (await host.submit(REQUEST, offline=True))["task_id"]
            await asyncio.wait_for(_asked_on_bus(host, task_id, "plan"), 10)
            await host.cancel(task_id, actor="cli:ann", reason="not now")
        assert checks == []

        tear(settings.paths.db_path, "events")
        with pytest.raises(DamagedFile) as raised:
            await host.submit(REQUEST, offline=True)
        assert str(settings.paths.db_path) in raised.value.message
        assert len(checks) == 1
    finally:
        await host.close()
