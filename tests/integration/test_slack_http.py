"""The Slack app's HTTP mode against a real daemon (its API served in-process on a Unix socket,
offline tasks) and the loopback Slack: what a request must prove before it does anything — a
valid, fresh signature, a first delivery, a user on the allow-list; and a button that lets a
module's paused tool call run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from agentfirm.daemon.process import bind_socket
from agentfirm.daemon.server import create_app
from agentfirm.daemon.service import TaskHost
from keyring.backends import fail

from agentfirm.runs.base import settings_env
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from agentfirm.slack.config import SlackConfig
from agentfirm.slack.daemon_link import HttpDaemonLink
from agentfirm.slack.prompts import BUDGET_BLOCK, BUDGET_INPUT
from agentfirm.slack.server import HttpReceiver, SlackService, build
from tests.fakes.http_fake import running
from tests.fakes.notes_task import NOTE, ORIGIN, NotesModel, world_env
from tests.fakes.notes_task import REQUEST as NOTES_REQUEST
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.slack_api import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    Payload,
    Posted,
    click,
    mention,
    text_input,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
ALLOWED = "U0ALLOWED"
OUTSIDER = "U0OUTSIDE"
CHANNEL = "C0PATENTS"
THREAD = "1690000000.000100"


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handlers: the test owns the process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class World:
    """What the daemon's tasks run against: offline (``env`` empty), or the notes world
    (``tests/fakes/notes_task.py``: a module asking for a tool that changes things)."""

    env: dict[str, str]
    model: NotesModel | None = None
    notebook: Path | None = None


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """Offline unless a test asks for ``"notes"`` (``parametrize(..., indirect=True)``)."""
    if getattr(request, "param", None) != "notes":
        yield World({})
        return
    notebook = tmp_path / "notebook.txt"
    with running(OpenAIFake()) as fake:
        model = NotesModel(fake)
        fake.respond_with(model)
        yield World(world_env(tmp_path / "home", notebook, fake.url), model, notebook)


@pytest.fixture
async def daemon(tmp_path: Path, world: World) -> AsyncIterator[tuple[TaskHost, Path]]:
    home = tmp_path / "home"
    settings = load_settings({**world.env, "AGENTFIRM_HOME": str(home)}, cwd=home)
    redactor = Redactor()
    keys = {k: v for k, v in world.env.items() if k.startswith("OPENAI_")}
    secrets = SecretStore(redactor, env=keys, backend=fail.Keyring())
    env = {**settings_env(settings), **keys} if keys else None
    host = await TaskHost.open(settings, redactor=redactor, secrets=secrets, env=env)
    sockdir = Path(tempfile.mkdtemp(prefix="af", dir="/tmp"))
    sock = bind_socket(sockdir / "d.sock")
    config = uvicorn.Config(
        create_app(host, redactor=redactor, socket=str(sockdir / "d.sock")),
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = _QuietServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    yield host, sockdir / "d.sock"
    host.stopping.set()
    server.should_exit = True
    await serving
    await host.close()
    shutil.rmtree(sockdir, ignore_errors=True)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@dataclass
class App:
    slack: FakeSlack
    host: TaskHost
    service: SlackService
    http: httpx.AsyncClient
    url: str

    async def post(self, payload: Payload, **sign: Any) -> httpx.Response:
        return await self.http.post(self.url, content=payload.body, headers=payload.headers(**sign))

    async def until(self, predicate: Callable[[FakeSlack], T | None]) -> T:
        return await asyncio.to_thread(self.slack.wait_for, predicate, 30.0)

    async def asked(self, *texts: str) -> Posted:
        """The first message of the thread whose first version contains one of ``texts``."""
        return await self.until(
            lambda s: next(
                (m for m in s.thread(CHANNEL, THREAD) if any(t in m.history[0] for t in texts)),
                None,
            )
        )

    async def plan_prompt(self) -> tuple[Posted, str]:
        """The plan question posted in the thread (clarifying questions, if the task asks any,
        answered with their defaults first), and its approval id."""
        posted = await self.asked("Plan ready", "A few questions")
        if "A few questions" in posted.history[0]:
            (clarify,) = [a for a in await self.approvals() if a["kind"] == "clarify"]
            defaults = click(
                "af_clarify_defaults",
                str(clarify["id"]),
                user=ALLOWED,
                channel=CHANNEL,
                message_ts=posted.ts,
                thread_ts=THREAD,
            )
            assert (await self.post(defaults)).status_code == 200
            posted = await self.asked("Plan ready")
        (approval,) = [a for a in await self.approvals() if a["kind"] == "plan"]
        assert approval["id"] in json.dumps(posted.blocks)
        return posted, str(approval["id"])

    async def approvals(self) -> list[dict[str, Any]]:
        (task,) = await self.host.app.store.list_tasks()
        return [
            a.model_dump(mode="json") for a in await self.host.app.store.list_approvals(task.id)
        ]


@pytest.fixture
async def app(daemon: tuple[TaskHost, Path], slack: FakeSlack, world: World) -> AsyncIterator[App]:
    host, socket = daemon
    config = SlackConfig(
        mode="http",
        host="127.0.0.1",
        port=0,
        api_url=slack.api_url,
        allowed_users=frozenset({ALLOWED}),
        allowed_channels=frozenset(),
        bot_token=BOT_TOKEN,
        signing_secret=SIGNING_SECRET,
        offline=not world.env,
    )
    async with HttpDaemonLink(socket) as link, httpx.AsyncClient(timeout=30) as http:
        service = build(config, link)
        await service.start()
        receiver = service.receiver
        assert isinstance(receiver, HttpReceiver)
        yield App(slack, host, service, http, f"http://127.0.0.1:{receiver.port}/slack/events")
        await service.stop()


def _mention() -> Payload:
    return mention(REQUEST, user=ALLOWED, channel=CHANNEL, ts=THREAD)


# ------------------------------------------------------------------ signatures
async def test_bad_stale_and_missing_signatures_are_rejected_with_401(app: App) -> None:
    payload = _mention()
    forged = await app.post(payload, secret="not-the-signing-secret")
    stale = await app.post(payload, ts=int(time.time()) - 10 * 60)
    unsigned = await app.http.post(
        app.url, content=payload.body, headers={"Content-Type": payload.content_type}
    )
    tampered = await app.http.post(
        app.url, content=payload.body.replace(b"solder", b"silver"), headers=payload.headers()
    )
    await app.service.bridge.settled()

    assert [r.status_code for r in (forged, stale, unsigned, tampered)] == [401, 401, 401, 401]
    assert await app.host.app.store.list_tasks() == []
    assert [c.method for c in app.slack.calls()] == ["auth.test"]  # the startup check only


@pytest.mark.parametrize("stamp", ["soon", "", "1.5", "9" * 400])
async def test_a_timestamp_that_is_not_a_number_is_401_not_500(app: App, stamp: str) -> None:
    payload = _mention()
    headers = {**payload.headers(), "X-Slack-Request-Timestamp": stamp}

    response = await app.http.post(app.url, content=payload.body, headers=headers)
    await app.service.bridge.settled()

    assert response.status_code == 401
    assert await app.host.app.store.list_tasks() == []


async def test_a_signature_from_slightly_in_the_future_is_accepted(app: App) -> None:
    response = await app.post(_mention(), ts=int(time.time()) + 60)

    assert response.status_code == 200
    await app.plan_prompt()


# ------------------------------------------------------------------ replays
async def test_a_replayed_mention_starts_one_task(app: App) -> None:
    payload = _mention()
    headers = payload.headers()

    first = await app.http.post(app.url, content=payload.body, headers=headers)
    again = await app.http.post(app.url, content=payload.body, headers=headers)
    retried = await app.post(payload)  # Slack's own retry: same event id, new signature
    await app.plan_prompt()
    await app.service.bridge.settled()

    assert [first.status_code, again.status_code, retried.status_code] == [200, 200, 200]
    (task,) = await app.host.app.store.list_tasks()
    created = (await app.host.app.store.list_transitions(task.id))[0]
    assert created.actor == f"slack:{ALLOWED}"
    received = [m for m in app.slack.thread(CHANNEL, THREAD) if "Received" in m.history[0]]
    assert len(received) == 1


async def test_a_replayed_approval_click_does_nothing(app: App) -> None:
    assert (await app.post(_mention())).status_code == 200
    posted, approval_id = await app.plan_prompt()
    payload = click(
        "af_plan_approve",
        approval_id,
        user=ALLOWED,
        channel=CHANNEL,
        message_ts=posted.ts,
        thread_ts=THREAD,
        values=text_input(BUDGET_BLOCK, BUDGET_INPUT, "3.00"),
    )
    headers = payload.headers()

    first = await app.http.post(app.url, content=payload.body, headers=headers)
    await app.until(lambda s: "approved by" in s.message(CHANNEL, posted.ts).text)
    replayed = await app.http.post(app.url, content=payload.body, headers=headers)
    await app.service.bridge.settled()

    assert (first.status_code, replayed.status_code) == (200, 200)
    # A second decision would be refused by the daemon and told to the clicker: nothing was.
    assert app.slack.calls("chat.postEphemeral") == []
    (plan,) = [a for a in await app.approvals() if a["kind"] == "plan"]
    assert (plan["decision"], plan["actor"]) == ("approved", f"slack:{ALLOWED}")


# ------------------------------------------------------------------ the allow-list
async def test_a_user_outside_the_allow_list_cannot_approve(app: App) -> None:
    assert (await app.post(_mention())).status_code == 200
    posted, approval_id = await app.plan_prompt()

    outsider = click(
        "af_plan_approve", approval_id, user=OUTSIDER, channel=CHANNEL, message_ts=posted.ts
    )
    assert (await app.post(outsider)).status_code == 200
    (refusal,) = await app.until(lambda s: s.calls("chat.postEphemeral"))
    await app.service.bridge.settled()

    assert refusal.args["user"] == OUTSIDER
    assert "allow-list" in refusal.args["text"]
    (plan,) = [a for a in await app.approvals() if a["kind"] == "plan"]
    assert plan["decision"] == "pending"
    assert "Plan ready" in app.slack.message(CHANNEL, posted.ts).text


async def test_a_user_outside_the_allow_list_cannot_start_a_task(app: App) -> None:
    payload = mention(REQUEST, user=OUTSIDER, channel=CHANNEL, ts=THREAD)

    assert (await app.post(payload)).status_code == 200
    (refusal,) = await app.until(lambda s: s.calls("chat.postEphemeral"))
    await app.service.bridge.settled()

    assert refusal.args["user"] == OUTSIDER
    assert await app.host.app.store.list_tasks() == []
    assert app.slack.calls("chat.postMessage") == []


# ------------------------------------------------------------------ tool consent
@pytest.mark.parametrize("world", ["notes"], indirect=True)
async def test_the_allow_button_lets_the_paused_tool_call_run(app: App, world: World) -> None:
    """Issue 18, "Done when" 4: the module pauses on a ``tool`` question, its prompt in the
    thread shows the call, and pressing Allow (the interaction Slack posts) lets it run."""
    assert world.model is not None
    assert world.notebook is not None
    mentioned = mention(NOTES_REQUEST, user=ALLOWED, channel=CHANNEL, ts=THREAD)
    assert (await app.post(mentioned)).status_code == 200

    async def press(action: str, posted: Posted, approval_id: str) -> None:
        pressed = click(
            action,
            approval_id,
            user=ALLOWED,
            channel=CHANNEL,
            message_ts=posted.ts,
            thread_ts=THREAD,
        )
        assert (await app.post(pressed)).status_code == 200

    async def pending(kind: str) -> str:
        for _ in range(600):
            found = [a for a in await app.approvals() if a["kind"] == kind]
            if found:
                return str(found[0]["id"])
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind} question")

    posted, approval_id = await app.plan_prompt()
    await press("af_plan_approve", posted, approval_id)
    asked = await app.asked("asks to run")
    assert ORIGIN in asked.text
    assert NOTE in json.dumps(asked.blocks)
    (task,) = await app.host.app.store.list_tasks()
    assert f"agentfirm tasks transcript {task.id} --module notes" in json.dumps(asked.blocks)
    assert not world.notebook.exists()  # paused: nothing runs before someone allows it
    await press("af_tool_allow", asked, await pending("tool"))
    review = await app.asked("draft is ready")
    await press("af_review_approve", review, await pending("review"))
    await app.until(
        lambda s: next((m for m in s.thread(CHANNEL, THREAD) if " completed: " in m.text), None)
    )

    assert world.notebook.read_text() == NOTE + "\n"
    assert world.model.asked == 1
    (tool,) = [a for a in await app.approvals() if a["kind"] == "tool"]
    assert (tool["decision"], tool["actor"]) == ("approved", f"slack:{ALLOWED}")
