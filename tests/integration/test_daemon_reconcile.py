"""A daemon start books again, at what OpenAI stored, the calls a task left "≤" when no drive of
it will look any more (it ended while a record was still due, or a kill cut its last look off).
A task host in-process on a real SQLite store, against the loopback OpenAI fake."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from keyring.backends import fail

from agentfirm.domain.models import LedgerEntry, Task, TaskStatus
from agentfirm.ids import new_id
from agentfirm.router.reconcile import KEPT_PREFIX
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from daemon.service import TaskHost
from tests.fakes.http_fake import running
from tests.fakes.metering import Rates
from tests.fakes.openai_fake import OpenAIFake

pytestmark = pytest.mark.integration

MODEL = "gpt-5-mini"
RATES = Rates(input=250, output=2_000, cached_input=25)  # gpt-5-mini's list prices, nano/token
KEY = "sk-proj-daemon-reconcile-01"


def _sent_and_cut_off(fake: OpenAIFake, call_id: str) -> None:
    """A request that reached OpenAI stored under ``call_id``, whose answer its sender never
    read (it was killed)."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Size the market for heat pumps in Norway."}],
        "max_completion_tokens": 400,
        "store": True,
        "metadata": {"agentfirm_call_id": call_id},
    }
    request = urllib.request.Request(
        f"{fake.url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert reply.status == 200


async def test_a_daemon_start_rebooks_the_calls_an_ended_task_left_upper_bounds(
    tmp_path: Path,
) -> None:
    with running(OpenAIFake(rates={MODEL: RATES})) as fake:
        call_id = new_id(KEPT_PREFIX)
        _sent_and_cut_off(fake, call_id)
        env = {
            "AGENTFIRM_HOME": str(tmp_path),
            "AGENTFIRM_OPENAI_STORE": "1",
            "AGENTFIRM_TIERS__REASONING": f'["openai:{MODEL}"]',
            "AGENTFIRM_TIERS__EXECUTION": f'["openai:{MODEL}"]',
            "AGENTFIRM_TIERS__UTILITY": f'["openai:{MODEL}"]',
        }
        settings = load_settings(env, cwd=tmp_path)
        redactor = Redactor()
        secrets = SecretStore(redactor, env={"OPENAI_API_KEY": KEY}, backend=fail.Keyring())
        host = await TaskHost.open(
            settings,
            redactor=redactor,
            secrets=secrets,
            env={"OPENAI_BASE_URL": f"{fake.url}/v1"},
        )
        try:
            store = host.app.store
            task = Task(id=new_id("t"), request="ended with a call cut short")
            await store.create_task(task, actor="test")
            await store.set_budget(task.id, 10**9)
            await store.record_call(
                LedgerEntry(
                    call_id=call_id,
                    task_id=task.id,
                    tier="utility",
                    provider="openai",
                    model=MODEL,
                    cost_nano=900_000,
                    outcome="cancelled",
                )
            )
            await store.transition(task.id, TaskStatus.ABORTED, actor="test")

            assert await host.start() == []  # ended: not driven
            assert host._reconciling is not None
            await host._reconciling

            [row] = await store.list_ledger(task.id)
            [billed] = fake.bill.items
            assert (row.input_tokens, row.output_tokens) == (
                billed.input_tokens,
                billed.output_tokens,
            )
            assert (row.cost_nano, row.upper_bound) == (fake.bill.nano, False)
            assert (await store.get_budget(task.id)).spent_nano == fake.bill.nano
            assert await store.tasks_with_estimates() == []
        finally:
            await host.close()
