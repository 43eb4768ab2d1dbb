"""The daemon's API and task host in-process: the FastAPI app served by uvicorn on a Unix socket,
offline tasks, a real SQLite store and bus under a temporary home."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from agentfirm.daemon.process import bind_socket
from agentfirm.daemon.server import create_app
from agentfirm.daemon.service import TaskHost
from keyring.backends import fail
from rich.console import Console

from agentfirm.api.client import DaemonClient
from agentfirm.api.views import task_costs, task_detail, task_rows
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings, load_settings

pytestmark = pytest.mark.integration

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
CANARY = "sk-ant-api03-CANARY" + "5" * 40


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: the test owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _settings(home: Path, latency: str = "0") -> Settings:
    env = {"AGENTFIRM_HOME": str(home), "AGENTFIRM_OFFLINE_LATENCY_MS": latency}
    return load_settings(env, cwd=home)


async def _host(settings: Settings) -> TaskHost:
    redactor = Redactor()
    secrets = SecretStore(redactor, env={"ANTHROPIC_API_KEY": CANARY}, backend=fail.Keyring())
    for name in secrets.KNOWN:
        secrets.get(name)
    return await TaskHost.open(settings, redactor=redactor, secrets=secrets)


@dataclass
class Api:
    http: httpx.AsyncClient
    host: TaskHost
    socket: Path

    async def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        async with self.http.stream(
            "GET", f"/tasks/{task_id}/events", params={"after_seq": after_seq}
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line:
                    yield json.loads(line)

    async def asked(self, task_id: str, kind: str, *, after_seq: int = 0) -> tuple[str, int]:
        """The id of the next approval of ``kind`` the task asks, and that event's seq. Questions
        before planning (the offline provider always has some) are left to assumptions."""
        async for event in self.events(task_id, after_seq=after_seq):
            if event["type"] != "approval.requested":
                continue
            if event["payload"]["kind"] == kind:
                return event["payload"]["approval_id"], event["seq"]
            if event["payload"]["kind"] == "clarify":
                await self.decide(event["payload"]["approval_id"], "rejected")
        raise AssertionError(f"the stream ended before a {kind} approval was asked")

    async def submit(self, **body: Any) -> str:
        response = await self.http.post(
            "/tasks", json={"request": REQUEST, "offline": True, **body}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["task_id"])

    async def decide(self, approval_id: str, decision: str, **body: Any) -> httpx.Response:
        return await self.http.post(
            f"/approvals/{approval_id}", json={"decision": decision, "actor": "cli:ann", **body}
        )

    async def until_final(self, task_id: str) -> list[dict[str, Any]]:
        return [event async for event in self.events(task_id)]


@contextlib.asynccontextmanager
async def serving(home: Path) -> AsyncIterator[Api]:
    """The daemon's app on a host under ``home``, served by uvicorn on a Unix socket."""
    host = await _host(_settings(home))
    sockdir = Path(tempfile.mkdtemp(prefix="af", dir="/tmp"))
    sock = bind_socket(sockdir / "d.sock")
    config = uvicorn.Config(
        create_app(host, redactor=host.app.redactor, socket=str(sockdir / "d.sock")),
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _QuietServer(config)
    serve = asyncio.create_task(server.serve(sockets=[sock]))  # bound and listening already
    transport = httpx.AsyncHTTPTransport(uds=str(sockdir / "d.sock"))
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://daemon", timeout=30
        ) as http:
            yield Api(http, host, sockdir / "d.sock")
    finally:
        host.stopping.set()
        server.should_exit = True
        await serve
        await host.close()
        shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(tmp_path / "home") as served:
        yield served


# ------------------------------------------------------------------ a whole task
async def test_a_submitted_task_is_planned_in_the_background_then_waits_for_approval(
    api: Api,
) -> None:
    response = await api.http.post("/tasks", json={"request": REQUEST, "offline": True})

    assert response.status_code == 201
    created = response.json()
    assert created["status"] == "classified"
    assert created["persona"] == "patent_research"
    approval_id, _seq = await api.asked(created["task_id"], "plan")
    (pending,) = (await api.http.get(f"/tasks/{created['task_id']}/approvals?pending=true")).json()
    assert pending["id"] == approval_id
    assert {"modules", "waves", "estimate", "suggested_budget_usd"} <= set(pending["payload"])


async def test_a_task_runs_to_completion_through_api_approvals(api: Api) -> None:
    task_id = await api.submit()
    plan_id, seq = await api.asked(task_id, "plan")

    assert (await api.decide(plan_id, "approved", budget_usd="3")).status_code == 200
    review_id, _seq = await api.asked(task_id, "review", after_seq=seq)
    assert (await api.decide(review_id, "approved")).status_code == 200
    events = await api.until_final(task_id)

    assert [e["type"] for e in events[-2:]] == ["task.completed", "task.result"]
    assert events[-1]["payload"]["result"]["status"] == "completed"
    shown = (await api.http.get(f"/tasks/{task_id}")).json()
    assert shown["status"] == "completed"
    assert shown["budget_usd"] == 3.0
    assert shown == await task_detail(api.host.app.store, task_id)
    costs = (await api.http.get(f"/tasks/{task_id}/costs")).json()
    assert costs == await task_costs(api.host.app.store, task_id)
    assert costs["simulated"] is True
    assert 0 < costs["total_usd"] <= 3.0
    assert (await api.http.get("/tasks")).json() == await task_rows(api.host.app.store)


async def test_events_replay_from_a_seq_and_end_when_the_task_is_final(api: Api) -> None:
    task_id = await api.submit()
    plan_id, _seq = await api.asked(task_id, "plan")
    await api.decide(plan_id, "rejected", notes="not now")
    everything = await api.until_final(task_id)

    tail = [e async for e in api.events(task_id, after_seq=everything[2]["seq"])]

    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert tail == everything[3:]
    transitions = [e for e in everything if e["type"] == "task.transition"]
    assert transitions[-1]["payload"]["to"] == "rejected"
    assert everything[-1]["type"] == "task.result"
    assert everything[-1]["payload"]["result"]["status"] == "rejected"


async def test_a_rejected_plan_rejects_the_task_and_cannot_be_decided_again(api: Api) -> None:
    task_id = await api.submit()
    plan_id, _seq = await api.asked(task_id, "plan")

    first = await api.decide(plan_id, "rejected")
    await api.until_final(task_id)
    again = await api.decide(plan_id, "approved")

    assert first.status_code == 200
    assert again.status_code == 400
    assert "already decided" in again.json()["error"]
    assert (await api.http.get(f"/tasks/{task_id}")).json()["status"] == "rejected"


async def test_cancel_aborts_a_waiting_task_and_its_open_question(api: Api) -> None:
    task_id = await api.submit()
    await api.asked(task_id, "plan")

    response = await api.http.post(f"/tasks/{task_id}/cancel", json={"reason": "changed my mind"})

    assert response.json() == {"task_id": task_id, "status": "aborted"}
    approvals = (await api.http.get(f"/tasks/{task_id}/approvals")).json()
    assert [(a["kind"], a["decision"]) for a in approvals] == [
        ("clarify", "rejected"),
        ("plan", "aborted"),
    ]
    assert not api.host.driving(task_id)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({}, 422, "request"),
        ({"request": ""}, 400, "the request is empty"),
        ({"request": REQUEST, "budget_usd": 0}, 400, "budget_usd '0'"),
        ({"request": REQUEST, "budget_usd": "lots"}, 400, "budget_usd 'lots'"),
        ({"request": REQUEST, "colour": "red"}, 422, "colour"),
        ({"request": "   ", "offline": True}, 400, "empty"),
        ({"request": "write me a limerick about otters", "offline": True}, 400, "persona"),
        ({"request": REQUEST, "persona": "nosuch", "offline": True}, 404, "nosuch"),
    ],
)
async def test_bad_submissions_are_refused_in_one_line_before_a_task_is_written(
    api: Api, body: dict[str, Any], status: int, needle: str
) -> None:
    response = await api.http.post("/tasks", json=body)

    assert response.status_code == status
    message = response.json()["error"]
    assert needle in message
    assert "\n" not in message
    assert (await api.http.get("/tasks")).json() == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks/t_nope"),
        ("GET", "/tasks/t_nope/costs"),
        ("GET", "/tasks/t_nope/approvals"),
        ("GET", "/tasks/t_nope/events"),
        ("POST", "/tasks/t_nope/resume"),
        ("POST", "/tasks/t_nope/cancel"),
    ],
)
async def test_unknown_tasks_are_404(api: Api, method: str, path: str) -> None:
    response = await api.http.request(method, path, json={} if method == "POST" else None)

    assert response.status_code == 404
    assert "t_nope" in response.json()["error"]


async def test_an_unknown_approval_is_404(api: Api) -> None:
    response = await api.decide("ap_nope", "approved")

    assert response.status_code == 404


async def test_a_budget_for_a_review_is_bad_input(api: Api) -> None:
    task_id = await api.submit()
    plan_id, seq = await api.asked(task_id, "plan")
    await api.decide(plan_id, "approved")
    review_id, _seq = await api.asked(task_id, "review", after_seq=seq)

    response = await api.decide(review_id, "approved", budget_usd="9")

    assert response.status_code == 400
    assert "budget" in response.json()["error"]


# ------------------------------------------------------------------ reading
async def test_personas_providers_health_and_openapi_are_served(api: Api) -> None:
    personas = (await api.http.get("/personas")).json()
    providers = (await api.http.get("/providers")).json()
    health = (await api.http.get("/health")).json()
    schema = (await api.http.get("/openapi.json")).json()

    assert {"patent_research", "market_research"} <= {p["id"] for p in personas}
    assert set(providers) == {"offline", "providers", "chains", "problems"}
    assert health["ok"] is True
    assert {"/tasks", "/tasks/{task_id}/events", "/approvals/{approval_id}"} <= set(schema["paths"])


async def test_a_secret_in_stored_data_is_redacted_from_responses(api: Api) -> None:
    task_id = await api.submit(request=f"{REQUEST} using key {CANARY}")

    bodies = [
        (await api.http.get("/tasks")).text,
        (await api.http.get(f"/tasks/{task_id}")).text,
        json.dumps([e async for e in _first_events(api, task_id, 3)]),
    ]

    for body in bodies:
        assert CANARY not in body
    assert "[REDACTED]" in bodies[0]


async def _first_events(api: Api, task_id: str, count: int) -> AsyncIterator[dict[str, Any]]:
    seen = 0
    async for event in api.events(task_id):
        yield event
        seen += 1
        if seen == count:
            return


# ------------------------------------------------------------------ restarts of the host
async def _asked_on_bus(host: TaskHost, task_id: str, kind: str) -> str:
    """As ``Api.asked``, on the host's bus."""
    async for event in host.app.bus.subscribe(task_id):
        if event.type != "approval.requested":
            continue
        if event.payload["kind"] == kind:
            return str(event.payload["approval_id"])
        approval_id = str(event.payload["approval_id"])
        pending = {a.id for a in await host.decider.pending(task_id)}
        if event.payload["kind"] == "clarify" and approval_id in pending:
            await host.decide(approval_id, "rejected", actor="cli:ann")
    raise AssertionError("the bus closed")


async def _done(host: TaskHost, task_id: str) -> None:
    async for _event in host.follow(task_id):
        pass


async def test_a_question_pending_at_shutdown_is_answered_after_the_restart(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path / "home")
    first = await _host(settings)
    task_id = (await first.submit(REQUEST, offline=True))["task_id"]
    plan_id = await asyncio.wait_for(_asked_on_bus(first, task_id, "plan"), 10)
    await first.close()

    second = await _host(settings)
    try:
        assert await second.start() == []  # waiting for a human: not driven until answered
        await second.decide(plan_id, "approved", actor="cli:ann")
        review_id = await asyncio.wait_for(_asked_on_bus(second, task_id, "review"), 10)
        await second.decide(review_id, "approved", actor="cli:ann")
        await asyncio.wait_for(_done(second, task_id), 20)
        assert (await second.app.store.get_task(task_id)).status == "completed"
        plans = [a for a in await second.app.store.list_approvals(task_id) if a.kind == "plan"]
        assert [a.id for a in plans] == [plan_id]
    finally:
        await second.close()


async def test_a_task_executing_at_shutdown_resumes_without_rerunning_done_modules(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path / "home", latency="150")
    first = await _host(settings)
    task_id = (await first.submit(REQUEST, offline=True))["task_id"]
    plan_id = await asyncio.wait_for(_asked_on_bus(first, task_id, "plan"), 10)
    await first.decide(plan_id, "approved", actor="cli:ann")
    async for event in first.app.bus.subscribe(task_id):
        if event.type == "module.completed":
            break
    await first.close()

    second = await _host(settings)
    try:
        runs = await second.app.store.list_module_runs(task_id)
        before = {r.module_id: r.attempts for r in runs if r.status == "done"}
        assert (await second.app.store.get_task(task_id)).status == "executing"
        assert await second.start() == [task_id]
        review_id = await asyncio.wait_for(_asked_on_bus(second, task_id, "review"), 30)
        after = {r.module_id: r.attempts for r in await second.app.store.list_module_runs(task_id)}
        assert before
        assert all(after[m] == attempts for m, attempts in before.items())
        await second.decide(review_id, "approved", actor="cli:ann")
        await asyncio.wait_for(_done(second, task_id), 20)
        assert (await second.app.store.get_task(task_id)).status == "completed"
    finally:
        await second.close()


# ------------------------------------------------------------------ tasks watch, answering inline
class _ScriptedConsole(Console):
    """A console whose prompts are answered from a script."""

    def __init__(self, answers: list[str]) -> None:
        super().__init__(file=io.StringIO(), width=120)
        self.answers = answers
        self.prompts: list[str] = []

    def input(self, prompt: Any = "", **kwargs: Any) -> str:
        self.prompts.append(str(prompt))
        return self.answers.pop(0)


async def test_tasks_watch_answers_the_plan_and_the_draft_inline(api: Api) -> None:
    from agentfirm.cli.answers import TerminalAnswers
    from agentfirm.cli.follow import Follower

    task_id = await api.submit()
    out = _ScriptedConsole(["", "", "", "b 2.5", "a"])  # three questions first: the defaults
    client = DaemonClient(api.socket)
    follower = Follower(client, out, TerminalAnswers(out, actor="cli:ann"))

    try:
        result = await asyncio.to_thread(follower.follow, task_id, 0)
    finally:
        client.close()

    shown = (await api.http.get(f"/tasks/{task_id}")).json()
    assert shown["status"] == "completed"
    assert shown["budget_usd"] == 2.5
    approvals = (await api.http.get(f"/tasks/{task_id}/approvals")).json()
    asked = [a for a in approvals if "question" in a["payload"]]
    assert [(a["kind"], a["decision"]) for a in asked] == [
        ("clarify", "approved"),
        ("plan", "approved"),
        ("review", "approved"),
    ]
    assert all(a["actor"].startswith("cli:") for a in asked)
    assert len(out.prompts) == 5
    assert "prior_art_search" in out.file.getvalue()  # type: ignore[attr-defined]
    assert result is not None
    assert result["result"]["status"] == "completed"


async def test_a_task_out_of_budget_asks_for_more_and_finishes_once_raised(api: Api) -> None:
    task_id = await api.submit(budget_usd="0.05")
    plan_id, seq = await api.asked(task_id, "plan")
    await api.decide(plan_id, "approved")
    budget_id, seq = await api.asked(task_id, "budget", after_seq=seq)
    (pending,) = (await api.http.get(f"/tasks/{task_id}/approvals?pending=true")).json()
    assert pending["payload"]["ceiling_usd"] == 0.05
    assert pending["payload"]["by_module"]

    raised = await api.decide(budget_id, "approved", budget_usd="5")
    review_id, _seq = await api.asked(task_id, "review", after_seq=seq)
    await api.decide(review_id, "approved")
    await api.until_final(task_id)

    assert raised.status_code == 200
    shown = (await api.http.get(f"/tasks/{task_id}")).json()
    assert (shown["status"], shown["budget_usd"]) == ("completed", 5.0)


async def test_aborting_at_the_budget_question_aborts_the_task(api: Api) -> None:
    task_id = await api.submit(budget_usd="0.05")
    plan_id, seq = await api.asked(task_id, "plan")
    await api.decide(plan_id, "approved")
    budget_id, _seq = await api.asked(task_id, "budget", after_seq=seq)

    await api.decide(budget_id, "aborted", notes="enough")
    await api.until_final(task_id)

    shown = (await api.http.get(f"/tasks/{task_id}")).json()
    assert shown["status"] == "aborted"
    assert shown["transitions"][-1]["reason"] == "enough"


async def test_ctrl_c_at_a_question_says_the_task_waits_in_the_daemon_for_its_answer(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    """``run`` through the daemon, Ctrl-C while it asks: the client lets go and the task waits
    for the answer (it does not "go on"), and the line says how to answer it."""
    from agentfirm.cli.follow import drive

    class CtrlC:
        actor = "cli:ann"
        interactive = True

        def answer(self, approval: dict[str, Any]) -> None:
            raise KeyboardInterrupt

    task_id = await api.submit()
    client = DaemonClient(api.socket)

    def follow() -> bool:
        try:
            drive(client, task_id, after_seq=0, out=None, answers=CtrlC())  # type: ignore[arg-type]
        except KeyboardInterrupt:
            return True
        return False

    try:
        assert await asyncio.to_thread(follow)
    finally:
        client.close()

    err = capsys.readouterr().err
    assert f"task {task_id} waits in the daemon for the answer to its question" in err
    assert f"agentfirm resume {task_id} asks it again here" in err
    (pending,) = (await api.http.get(f"/tasks/{task_id}/approvals?pending=true")).json()
    assert pending["decision"] == "pending"
