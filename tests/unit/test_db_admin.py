"""``agentfirm db migrate|status`` on SQLite (the Postgres side is in
``tests/integration/test_postgres_store.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfirm.errors import BadInput
from agentfirm.store import db_admin
from agentfirm.store.migrate import load_migrations

_KNOWN = [m.version for m in load_migrations()]


async def test_migrate_applies_pending_versions_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agentfirm.sqlite3'}"

    first = await db_admin.migrate(url)
    again = await db_admin.migrate(url)

    assert (first, again) == (_KNOWN, [])


async def test_status_of_a_missing_file_is_all_pending_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "agentfirm.sqlite3"

    status = await db_admin.status(f"sqlite:///{path}")

    assert (status["backend"], status["current_version"], status["up_to_date"]) == (
        "sqlite",
        0,
        False,
    )
    assert [m["version"] for m in status["pending"]] == _KNOWN
    assert not path.exists()


async def test_status_after_migrate_is_up_to_date(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agentfirm.sqlite3'}"
    await db_admin.migrate(url)

    status = await db_admin.status(url)

    assert (status["current_version"], status["latest_version"], status["pending"]) == (
        _KNOWN[-1],
        _KNOWN[-1],
        [],
    )
    assert [m["name"] for m in status["applied"]] == [m.name for m in load_migrations()]


async def test_an_unknown_url_scheme_is_bad_input_with_the_password_masked() -> None:
    with pytest.raises(BadInput) as caught:
        await db_admin.status("mysql://ana:s3cret@db/agentfirm")

    assert "s3cret" not in str(caught.value)
