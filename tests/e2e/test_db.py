"""`agentfirm db migrate|status` on the embedded store."""

from __future__ import annotations

import pytest

from agentfirm.store.migrate import load_migrations
from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e


def test_db_status_then_migrate_then_up_to_date(cli: Cli) -> None:
    before = cli("db", "status", "--json")
    migrated = cli("db", "migrate", "--json")
    after = cli("db", "status", "--json")
    again = cli("db", "migrate", "--json")

    assert before.code == 0, before.stderr
    assert before.json()["up_to_date"] is False
    assert migrated.json()["applied"] == [m.version for m in load_migrations()]
    assert after.json()["up_to_date"] is True
    assert again.json() == {"applied": []}
