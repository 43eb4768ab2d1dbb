"""AGENTFIRM_PROVIDER_TIMEOUT_S bounds every provider call the app's router makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfirm.app import App
from agentfirm.domain.models import Task
from agentfirm.errors import ConfigError, ProviderError
from agentfirm.money import usd_to_nano
from agentfirm.router.base import Message
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings


async def test_a_call_slower_than_the_timeout_fails_as_a_provider_error(tmp_path: Path) -> None:
    env = {
        "AGENTFIRM_HOME": str(tmp_path),
        "AGENTFIRM_OFFLINE": "1",
        "AGENTFIRM_OFFLINE_LATENCY_MS": "5000",  # every simulated call takes 5 s
        "AGENTFIRM_PROVIDER_TIMEOUT_S": "1",
    }
    settings = load_settings(env, cwd=tmp_path)
    redactor = Redactor()
    app = await App.open(
        settings, redactor=redactor, secrets=SecretStore(redactor, env={}), env=env
    )
    async with app:
        await app.store.create_task(Task(id="t_1", request="x"), actor="test")
        await app.store.set_budget("t_1", usd_to_nano("1"))

        with pytest.raises(ProviderError, match="offline"):
            await app.router.call(
                tier="utility", messages=[Message("user", "hello")], task_id="t_1", max_tokens=50
            )

        rows = await app.store.list_ledger("t_1")
    # The request had left: the provider may bill it, so each is booked at its reservation.
    assert rows
    assert all(row.outcome == "cancelled" for row in rows)
    assert all(row.cost_nano > 0 for row in rows)


def test_a_timeout_outside_its_range_is_a_config_problem(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="provider_timeout_s"):
        load_settings(
            {"AGENTFIRM_HOME": str(tmp_path), "AGENTFIRM_PROVIDER_TIMEOUT_S": "0"}, cwd=tmp_path
        )
