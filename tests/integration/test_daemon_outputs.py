"""The daemon's module outputs (``GET /tasks/{id}/artifacts``, ``…/artifacts/{module}``) and the
submitter of a task (``POST /tasks`` with ``actor``), through the API served on a Unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agentfirm.api.client import DaemonClient
from agentfirm.domain.models import Artifact
from agentfirm.errors import NotFound
from tests.integration.test_daemon_api import CANARY, REQUEST, Api, serving

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(tmp_path / "home") as served:
        yield served


async def _drafted(api: Api) -> str:
    """A task whose modules have all run, waiting for its draft to be reviewed."""
    task_id = await api.submit()
    plan_id, seq = await api.asked(task_id, "plan")
    assert (await api.decide(plan_id, "approved", budget_usd="3")).status_code == 200
    await api.asked(task_id, "review", after_seq=seq)
    return task_id


# ------------------------------------------------------------------ module outputs
async def test_the_latest_output_of_each_module_is_listed_and_shown_as_markdown(api: Api) -> None:
    task_id = await _drafted(api)

    listed = (await api.http.get(f"/tasks/{task_id}/artifacts")).json()
    shown = await api.http.get(f"/tasks/{task_id}/artifacts/prior_art_search")

    latest = await api.host.app.store.latest_artifacts(task_id)
    assert [row["module_id"] for row in listed] == sorted(latest)
    assert {"prior_art_search", "_deliverable"} <= {row["module_id"] for row in listed}
    row = next(r for r in listed if r["module_id"] == "prior_art_search")
    assert set(row) == {"module_id", "kind", "version", "created_at", "size"}
    assert row["kind"] == latest["prior_art_search"].output_type
    assert shown.status_code == 200
    output = shown.json()
    assert {k: output[k] for k in row} == row
    assert output["size"] == len(output["markdown"].encode()) > 0
    assert output["markdown"].startswith("# ")
    draft = (await api.http.get(f"/tasks/{task_id}/approvals?pending=true")).json()[0]
    # the module's own output is the draft's appendix section for it, one heading level up
    body = output["markdown"].split("\n", 1)[1].replace("\n## ", "\n##### ").strip()
    assert body.splitlines()[0] in draft["payload"]["draft_markdown"]


async def test_a_newer_version_replaces_the_older_one(api: Api) -> None:
    task_id = await _drafted(api)
    old = (await api.http.get(f"/tasks/{task_id}/artifacts/prior_art_search")).json()
    stored = (await api.host.app.store.latest_artifacts(task_id))["prior_art_search"]
    content = {**stored.content, "title": "Second look at the prior art"}
    await api.host.app.store.save_artifact(
        stored.model_copy(update={"version": stored.version + 1, "content": content})
    )

    new = (await api.http.get(f"/tasks/{task_id}/artifacts/prior_art_search")).json()

    assert new["version"] == old["version"] + 1
    assert new["markdown"].startswith("# Second look at the prior art")


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("/tasks/t_nope/artifacts", "t_nope"),
        ("/tasks/t_nope/artifacts/prior_art_search", "t_nope"),
        ("/tasks/{task}/artifacts/no_such_module", "no_such_module"),
        ("/tasks/{task}/artifacts/novelty_analysis", "no output yet"),
    ],
)
async def test_unknown_tasks_modules_and_missing_outputs_are_404_in_one_line(
    api: Api, path: str, needle: str
) -> None:
    task_id = await api.submit()
    await api.asked(task_id, "plan")  # planned: modules known, none run

    response = await api.http.get(path.format(task=task_id))

    assert response.status_code == 404
    message = response.json()["error"]
    assert needle in message
    assert "\n" not in message


async def test_a_secret_in_a_module_output_is_redacted(api: Api) -> None:
    task_id = await api.submit()
    await api.asked(task_id, "plan")
    await api.host.app.store.save_artifact(
        Artifact(
            task_id=task_id,
            module_id="prior_art_search",
            output_type="research_notes",
            content={"title": f"Found key {CANARY}", "summary": f"the key is {CANARY}"},
        )
    )

    bodies = [
        (await api.http.get(f"/tasks/{task_id}/artifacts")).text,
        (await api.http.get(f"/tasks/{task_id}/artifacts/prior_art_search")).text,
    ]

    assert all(CANARY not in body for body in bodies)
    assert "[REDACTED]" in bodies[1]


async def test_the_sync_client_reads_module_outputs(api: Api) -> None:
    task_id = await _drafted(api)
    client = DaemonClient(api.socket)
    try:
        listed = await asyncio.to_thread(client.artifacts, task_id)
        shown = await asyncio.to_thread(client.artifact, task_id, "prior_art_search")
        with pytest.raises(NotFound, match="no_such_module"):
            await asyncio.to_thread(client.artifact, task_id, "no_such_module")
    finally:
        client.close()

    assert "prior_art_search" in {row["module_id"] for row in listed}
    assert shown["markdown"]


# ------------------------------------------------------------------ the submitter
async def test_the_submitter_is_the_actor_of_the_creation_transition(api: Api) -> None:
    task_id = await api.submit(actor="slack:U0ALLOWED")
    unnamed = await api.submit()

    shown = (await api.http.get(f"/tasks/{task_id}")).json()
    other = (await api.http.get(f"/tasks/{unnamed}")).json()

    assert shown["transitions"][0]["from"] is None
    assert shown["transitions"][0]["actor"] == "slack:U0ALLOWED"
    assert other["transitions"][0]["actor"] == "daemon"


@pytest.mark.parametrize(
    "actor",
    ["alice", "slack:", "email:bob", "cli:bob smith", "cli:" + "a" * 65, "tui:ann\n", 7],
)
async def test_a_malformed_submitter_is_refused_in_one_line_before_a_task_is_written(
    api: Api, actor: Any
) -> None:
    response = await api.http.post(
        "/tasks", json={"request": REQUEST, "offline": True, "actor": actor}
    )

    assert response.status_code == 422
    message = response.json()["error"]
    assert message.startswith("field actor ")
    assert "\n" not in message
    assert (await api.http.get("/tasks")).json() == []
