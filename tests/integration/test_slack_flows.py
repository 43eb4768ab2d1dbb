"""The Slack app in HTTP mode against the loopback Slack (``FakeSlack``, spoken to by the real
slack-sdk client) and a scripted daemon: the flows a real daemon cannot be made to produce on
demand — clarifying questions, a failed module, a burst of 500 events, a bridge restart — and
every modal. Requests are signed as Slack signs them."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from agentfirm.errors import BadInput
from agentfirm.slack.config import SlackConfig
from agentfirm.slack.prompts import (
    BUDGET_BLOCK,
    BUDGET_INPUT,
    BUDGET_MODAL,
    MODULES_BLOCK,
    MODULES_INPUT,
    NOTES_BLOCK,
    NOTES_INPUT,
    REVISE_MODAL,
)
from agentfirm.slack.server import HttpReceiver, SlackService, build
from agentfirm.slack.throttle import Clock
from tests.fakes.daemon import ScriptedDaemon
from tests.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    ManualClock,
    Payload,
    Posted,
    SocketModeLink,
    click,
    command,
    mention,
    submit_view,
    text_input,
    thread_reply,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
ALLOWED = "U0ALLOWED"
OUTSIDER = "U0OUTSIDE"
CHANNEL = "C0PROJECTS"
FINAL = ("completed", "failed", "aborted", "rejected")


@dataclass
class Harness:
    slack: FakeSlack
    daemon: ScriptedDaemon
    service: SlackService
    http: httpx.AsyncClient
    url: str

    async def post(self, payload: Payload, **sign: Any) -> httpx.Response:
        return await self.http.post(self.url, content=payload.body, headers=payload.headers(**sign))

    async def until(self, predicate: Callable[[FakeSlack], T | None]) -> T:
        return await asyncio.to_thread(self.slack.wait_for, predicate, 10.0)

    async def start_task(self, text: str = "size the EU heat-pump market", ts: str = "") -> str:
        ts = ts or f"1690000000.{len(self.daemon.requests) + 1:06d}"
        assert (
            await self.post(mention(text, user=ALLOWED, channel=CHANNEL, ts=ts))
        ).status_code == 200
        await self.until(lambda s: len(self.daemon.requests) > 0 and self.progress(ts))
        return ts

    def progress(self, thread_ts: str) -> Posted | None:
        """The first message the bridge posted in the thread: the progress message."""
        posted = self.slack.thread(CHANNEL, thread_ts)
        return posted[0] if posted else None

    async def prompt(self, thread_ts: str, text: str) -> Posted:
        return await self.until(
            lambda s: next((m for m in s.thread(CHANNEL, thread_ts) if text in m.text), None)
        )


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@dataclass
class Opener:
    slack: FakeSlack
    daemon: ScriptedDaemon
    state_dir: Path
    http: httpx.AsyncClient
    opened: list[SlackService]

    async def __call__(self, clock: Clock | None = None, *, socket_mode: bool = False) -> Harness:
        config = SlackConfig(
            mode="socket" if socket_mode else "http",
            host="127.0.0.1",
            port=0,
            api_url=self.slack.api_url,
            allowed_users=frozenset({ALLOWED}),
            allowed_channels=frozenset({CHANNEL}),
            bot_token=BOT_TOKEN,
            app_token=APP_TOKEN if socket_mode else None,
            signing_secret=None if socket_mode else SIGNING_SECRET,
        )
        service = build(config, self.daemon, state_dir=self.state_dir, clock=clock)
        self.opened.append(service)  # stopped at the end even when it fails to start
        await service.start()
        receiver = service.receiver
        port = receiver.port if isinstance(receiver, HttpReceiver) else 0
        url = f"http://127.0.0.1:{port}/slack/events"
        return Harness(self.slack, self.daemon, service, self.http, url)


@pytest.fixture
async def open_app(slack: FakeSlack, tmp_path: Path) -> AsyncIterator[Opener]:
    async with httpx.AsyncClient(timeout=10) as http:
        opener = Opener(slack, ScriptedDaemon(), tmp_path / "state", http, [])
        yield opener
        for service in opener.opened:
            await service.stop()


@pytest.fixture
async def app(open_app: Opener) -> Harness:
    return await open_app()


# ------------------------------------------------------------------ clarify
async def test_clarifying_questions_are_answered_by_a_reply_in_the_thread(app: Harness) -> None:
    thread = await app.start_task()
    task_id = "t_1"
    questions = [
        {"id": "q1", "question": "Which countries?", "default": "EU-27"},
        {"id": "q2", "question": "Which years?", "default": "2020-2024"},
    ]
    approval_id = app.daemon.ask(task_id, "clarify", {"questions": questions})
    asked = await app.prompt(thread, "A few questions")
    shown = json.dumps(asked.blocks)

    outsider = thread_reply("UK only", user=OUTSIDER, channel=CHANNEL, ts="1.1", thread_ts=thread)
    assert (await app.post(outsider)).status_code == 200
    await app.until(lambda s: s.calls("chat.postEphemeral"))
    reply = thread_reply(
        "Germany and France\n2015-2024", user=ALLOWED, channel=CHANNEL, ts="1.2", thread_ts=thread
    )
    assert (await app.post(reply)).status_code == 200
    decided = await app.daemon.decision()

    assert app.slack.calls("chat.postEphemeral")[0].args["user"] == OUTSIDER
    assert decided["approval_id"] == approval_id
    assert decided["decision"] == "approved"
    assert decided["actor"] == f"slack:{ALLOWED}"
    assert decided["answers"] == {"q1": "Germany and France", "q2": "2015-2024"}
    edited = await app.until(
        lambda s: s.message(CHANNEL, asked.ts).edits and s.message(CHANNEL, asked.ts)
    )
    assert f"approved by <@{ALLOWED}>" in edited.text
    assert "Which countries?" in shown


async def test_use_the_defaults_answers_every_question_with_its_default(app: Harness) -> None:
    thread = await app.start_task()
    questions = [{"id": "q1", "question": "Which countries?", "default": "EU-27"}]
    approval_id = app.daemon.ask("t_1", "clarify", {"questions": questions})
    asked = await app.prompt(thread, "A few questions")

    payload = click(
        "af_clarify_defaults", approval_id, user=ALLOWED, channel=CHANNEL, message_ts=asked.ts
    )
    assert (await app.post(payload)).status_code == 200

    assert (await app.daemon.decision())["answers"] == {"q1": "EU-27"}


# ------------------------------------------------------------------ failure, budget, review
async def test_a_failed_module_can_be_skipped_from_its_prompt(app: Harness) -> None:
    thread = await app.start_task()
    approval_id = app.daemon.ask(
        "t_1", "failure", {"module_id": "scan", "error": "HTTP 503 from provider", "attempts": 3}
    )
    asked = await app.prompt(thread, "Module scan failed")
    shown = json.dumps(asked.blocks)

    payload = click(
        "af_failure_skip", approval_id, user=ALLOWED, channel=CHANNEL, message_ts=asked.ts
    )
    assert (await app.post(payload)).status_code == 200
    decided = await app.daemon.decision()

    assert (decided["decision"], decided["actor"]) == ("skip", f"slack:{ALLOWED}")
    assert "HTTP 503 from provider" in shown


async def test_budget_prompt_shows_the_spend_and_adds_the_ceiling_typed(app: Harness) -> None:
    thread = await app.start_task()
    approval_id = app.daemon.ask(
        "t_1",
        "budget",
        {
            "spent_usd": 0.9,
            "ceiling_usd": 1.0,
            "needed_usd": 0.2,
            "suggested_ceiling_usd": 1.5,
            "by_module": {"scan": 0.6, "size": 0.3},
            "by_provider": {"anthropic": 0.9},
        },
    )
    asked = await app.prompt(thread, "Budget reached")
    blocks = json.dumps(asked.blocks)

    values = text_input(BUDGET_BLOCK, BUDGET_INPUT, "2.25")
    payload = click(
        "af_budget_add",
        approval_id,
        user=ALLOWED,
        channel=CHANNEL,
        message_ts=asked.ts,
        values=values,
    )
    assert (await app.post(payload)).status_code == 200

    assert (await app.daemon.decision())["budget_usd"] == 2.25
    assert "Spend by module" in blocks
    assert "scan" in blocks
    assert "anthropic" in blocks


async def test_revise_opens_a_modal_whose_notes_and_modules_go_to_the_daemon(app: Harness) -> None:
    thread = await app.start_task()
    approval_id = app.daemon.ask(
        "t_1", "review", {"draft_markdown": "# Draft\nbody", "modules": ["scan", "size"]}
    )
    asked = await app.prompt(thread, "draft is ready")
    revise = click(
        "af_review_revise", approval_id, user=ALLOWED, channel=CHANNEL, message_ts=asked.ts
    )
    assert (await app.post(revise)).status_code == 200
    (opened,) = await app.until(lambda s: s.calls("views.open"))
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view

    empty = text_input(NOTES_BLOCK, NOTES_INPUT, "  ")
    refused = await app.post(
        submit_view(REVISE_MODAL, view["private_metadata"], empty, user=ALLOWED)
    )
    values = {
        **text_input(NOTES_BLOCK, NOTES_INPUT, "Use 2024 prices"),
        MODULES_BLOCK: {MODULES_INPUT: {"selected_options": [{"value": "size"}]}},
    }
    accepted = await app.post(
        submit_view(REVISE_MODAL, view["private_metadata"], values, user=ALLOWED)
    )
    decided = await app.daemon.decision()

    assert view["callback_id"] == REVISE_MODAL
    assert refused.json()["response_action"] == "errors"
    assert accepted.status_code == 200
    assert (decided["decision"], decided["notes"], decided["modules"]) == (
        "revise",
        "Use 2024 prices",
        ["size"],
    )


async def test_edit_budget_approves_the_plan_at_the_budget_entered(app: Harness) -> None:
    thread = await app.start_task()
    approval_id = app.daemon.ask(
        "t_1", "plan", {"modules": [{"id": "scan"}], "waves": [["scan"]], "budget_usd": 5}
    )
    asked = await app.prompt(thread, "Plan ready")
    edit = click(
        "af_plan_edit_budget", approval_id, user=ALLOWED, channel=CHANNEL, message_ts=asked.ts
    )
    assert (await app.post(edit)).status_code == 200
    (opened,) = await app.until(lambda s: s.calls("views.open"))
    view = opened.args["view"]
    meta = (json.loads(view) if isinstance(view, str) else view)["private_metadata"]

    bad = await app.post(
        submit_view(
            BUDGET_MODAL, meta, text_input(BUDGET_BLOCK, BUDGET_INPUT, "lots"), user=ALLOWED
        )
    )
    good = await app.post(
        submit_view(
            BUDGET_MODAL, meta, text_input(BUDGET_BLOCK, BUDGET_INPUT, "$4.50"), user=ALLOWED
        )
    )
    decided = await app.daemon.decision()

    assert bad.json() == {
        "response_action": "errors",
        "errors": {BUDGET_BLOCK: "budget 'lots' is not a positive amount in USD (e.g. 2.50)"},
    }
    assert good.status_code == 200
    assert (decided["decision"], decided["budget_usd"]) == ("approved", 4.5)


async def test_a_question_already_answered_elsewhere_is_refused_to_the_clicker(
    app: Harness,
) -> None:
    thread = await app.start_task()
    approval_id = app.daemon.ask("t_1", "plan", {"modules": [], "waves": []})
    asked = await app.prompt(thread, "Plan ready")
    app.daemon.rows["t_1"][0].update(decision="approved", actor="cli:ann")

    payload = click(
        "af_plan_approve", approval_id, user=ALLOWED, channel=CHANNEL, message_ts=asked.ts
    )
    assert (await app.post(payload)).status_code == 200
    (told,) = await app.until(lambda s: s.calls("chat.postEphemeral"))

    assert "already answered: approved by cli:ann" in told.args["text"]
    assert app.daemon.decisions.empty()


# ------------------------------------------------------------------ progress under a burst
async def test_a_burst_of_500_events_edits_progress_at_most_once_a_second(
    open_app: Opener,
) -> None:
    clock = ManualClock()
    open_app.slack.clock = clock.now
    app = await open_app(clock)
    thread = await app.start_task()
    progress_ts = app.progress(thread)
    assert progress_ts is not None
    start = clock.now()

    for n in range(1, 501):  # 500 events, 10 ms apart on the manual clock: a 5-second burst
        await clock.advance(0.01)
        event = app.daemon.publish("t_1", "cost.updated", {"spent_usd": n / 1000})
        await app.daemon.handled("t_1", event["seq"])
        await asyncio.sleep(0)  # a flusher woken by this event starts its edit
        await app.service.bridge.quiet("t_1")
    await clock.advance(1.0)
    await app.service.bridge.quiet("t_1")

    edits = [
        c for c in app.slack.calls("chat.update") if c.args["ts"] == progress_ts.ts and c.at > start
    ]
    times = [c.at for c in edits]
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(times))
    assert 5 <= len(edits) <= 7
    assert "Spent $0.5000" in app.slack.message(CHANNEL, progress_ts.ts).text


# ------------------------------------------------------------------ restart and the end
async def test_a_restarted_bridge_resumes_from_the_last_seq_and_asks_nothing_twice(
    open_app: Opener,
) -> None:
    first = await open_app()
    thread = await first.start_task()
    approval_id = first.daemon.ask("t_1", "plan", {"modules": [], "waves": [], "budget_usd": 2})
    asked = await first.prompt(thread, "Plan ready")
    await first.daemon.handled("t_1", 1)
    await first.service.stop()
    open_app.opened.remove(first.service)

    second = await open_app()
    payload = click(
        "af_plan_approve",
        approval_id,
        user=ALLOWED,
        channel=CHANNEL,
        message_ts=asked.ts,
        values=text_input(BUDGET_BLOCK, BUDGET_INPUT, "2.00"),
    )
    assert (await second.post(payload)).status_code == 200
    decided = await second.daemon.decision()
    edited = await second.until(
        lambda s: s.message(CHANNEL, asked.ts).edits and s.message(CHANNEL, asked.ts)
    )

    assert second.daemon.followed_from[-1] == 1  # after approval.requested
    assert decided["budget_usd"] == 2.0
    assert "approved by" in edited.text
    assert sum("Plan ready" in m.history[0] for m in second.slack.thread(CHANNEL, thread)) == 1


async def test_the_final_summary_closes_the_thread(app: Harness) -> None:
    thread = await app.start_task()
    app.daemon.details["t_1"].update(
        deliverable_path="/data/t_1/deliverable.md", repo_path="/data/t_1"
    )
    app.daemon.publish("t_1", "task.completed", {"commit": "0123456789abcdef", "quality": {}})
    app.daemon.end("t_1", "completed")

    summary = await app.prompt(thread, "Task t_1 completed")

    assert "`/data/t_1/deliverable.md`" in json.dumps(summary.blocks)
    assert "By module" in json.dumps(summary.blocks)
    await app.service.bridge.finished("t_1")
    assert not app.service.bridge.following("t_1")
    assert app.service.bridge.book.get("t_1") is None


# ------------------------------------------------------------------ Socket Mode
async def test_socket_mode_takes_mentions_and_clicks_over_the_websocket(
    open_app: Opener, slack: FakeSlack
) -> None:
    with SocketModeLink() as link:
        slack.socket_url = link.url
        app = await open_app(socket_mode=True)
        ts = "1690000000.000777"
        said = mention("size the EU heat-pump market", user=ALLOWED, channel=CHANNEL, ts=ts)
        envelope = await asyncio.to_thread(link.send, "events_api", said)
        await asyncio.to_thread(link.acked, envelope)
        await app.until(lambda s: app.daemon.requests and app.progress(ts))
        approval_id = app.daemon.ask("t_1", "plan", {"modules": [], "waves": []})
        asked = await app.prompt(ts, "Plan ready")
        press = click(
            "af_plan_reject", approval_id, user=ALLOWED, channel=CHANNEL, message_ts=asked.ts
        )
        envelope = await asyncio.to_thread(link.send, "interactive", press)
        await asyncio.to_thread(link.acked, envelope)
        decided = await app.daemon.decision()
        await app.service.stop()
        open_app.opened.remove(app.service)

    assert app.daemon.requests == ["size the EU heat-pump market"]
    assert (decided["decision"], decided["actor"]) == ("rejected", f"slack:{ALLOWED}")
    assert {c.token for c in slack.calls("apps.connections.open")} == {APP_TOKEN}


# ------------------------------------------------------------------ the slash command and setup
async def test_the_slash_command_starts_a_task_in_a_new_thread(app: Harness) -> None:
    said = command("size the EU heat-pump market", user=ALLOWED, channel=CHANNEL)
    assert (await app.post(said)).status_code == 200
    (root,) = await app.until(lambda s: s.top_level(CHANNEL))
    progress = await app.until(lambda s: app.daemon.requests and app.progress(root.ts))

    assert app.daemon.requests == ["size the EU heat-pump market"]
    assert app.daemon.actors == [f"slack:{ALLOWED}"]
    assert root.text == f"<@{ALLOWED}> asked: size the EU heat-pump market"
    assert "Received" in progress.history[0]


async def test_an_empty_slash_command_gets_a_hint_and_starts_nothing(app: Harness) -> None:
    assert (await app.post(command("  ", user=ALLOWED, channel=CHANNEL))).status_code == 200
    (hint,) = await app.until(lambda s: s.calls("chat.postEphemeral"))
    await app.service.bridge.settled()

    assert "Tell me what you need" in hint.args["text"]
    assert app.daemon.requests == []
    assert app.slack.calls("chat.postMessage") == []


async def test_slacks_url_verification_challenge_is_answered(app: Harness) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "t"}).encode()

    response = await app.post(Payload(body, "application/json"))

    assert response.status_code == 200
    assert "c-123" in response.text


async def test_a_question_closed_without_a_decision_loses_its_buttons_at_the_end(
    app: Harness,
) -> None:
    thread = await app.start_task()
    app.daemon.ask("t_1", "plan", {"modules": [], "waves": []})
    asked = await app.prompt(thread, "Plan ready")
    app.daemon.rows["t_1"][0].update(decision="aborted", actor="cli:ann", notes="cancelled")
    app.daemon.end("t_1", "aborted")

    await app.prompt(thread, "Task t_1 aborted")
    await app.service.bridge.finished("t_1")

    closed = app.slack.message(CHANNEL, asked.ts)
    assert "aborted by `cli:ann`" in closed.text
    assert "af_plan_approve" not in json.dumps(closed.blocks)


async def test_a_refused_app_token_stops_socket_mode_from_starting(
    open_app: Opener, slack: FakeSlack
) -> None:
    slack.app_token = "xapp-1-A111-9999-revoked"

    with pytest.raises(BadInput, match=r"Slack refused SLACK_APP_TOKEN \(invalid_auth\)"):
        await open_app(socket_mode=True)


async def test_a_refused_bot_token_stops_the_app_from_starting(
    open_app: Opener, slack: FakeSlack
) -> None:
    slack.bot_token = "xoxb-revoked-0000-0000"

    with pytest.raises(BadInput, match=r"Slack refused SLACK_BOT_TOKEN \(invalid_auth\)"):
        await open_app()
