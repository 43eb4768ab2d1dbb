"""A loopback Slack: the Web API methods the Slack front end calls, and Slack's side of the
Events API (signed event, command and interaction payloads to POST at the app).

``FakeSlack`` serves ``http://127.0.0.1:PORT/api/<method>`` from a background thread, speaking
Slack's wire format: form, query or JSON arguments, a bearer token (a wrong one gets
``{"ok": false, "error": "invalid_auth"}`` as Slack answers), ``ok`` bodies. Messages live in
memory (``chat.update`` of an unknown ts is ``message_not_found``; blocks breaking Slack's limits
are ``invalid_blocks``). Every call is recorded with the time of an injectable clock, so a test
can check the spacing of edits on a clock it drives. ``wait_for`` blocks until a predicate on
the fake holds (no sleeping in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from tests.fakes.http_fake import Recorded, Reply, ScriptedHTTPServer

T = TypeVar("T")
BOT_TOKEN = "xoxb-1111-2222-fakebottoken"
APP_TOKEN = "xapp-1-A111-3333-fakeapptoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_USER = "UAFBOT"
TEAM = "T0AGENTF"
_TEXT_LIMIT = 3000
_BLOCKS_LIMIT = 50


@dataclass(frozen=True)
class Call:
    """One Web API call: ``args`` merged from query, form and JSON; ``at`` on the fake's clock."""

    method: str
    args: Mapping[str, Any]
    token: str | None
    at: float


@dataclass
class Posted:
    """A message as Slack holds it; ``edits`` counts ``chat.update`` calls on it."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    edits: int = 0
    history: list[str] = field(default_factory=list)


class FakeSlack:
    """Use as a context manager; ``api_url`` is what ``AGENTFIRM_SLACK_API_URL`` takes."""

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.clock = clock
        self.socket_url: str | None = None
        """What ``apps.connections.open`` hands out (a Socket Mode test sets it)."""
        self._server = ScriptedHTTPServer(self._answer)
        self._cond = threading.Condition()
        self._calls: list[Call] = []
        self._messages: dict[tuple[str, str], Posted] = {}
        self._ts = itertools.count(1)

    def __enter__(self) -> FakeSlack:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def api_url(self) -> str:
        return self._server.url + "/api/"

    # ------------------------------------------------------------------ what the tests read
    def calls(self, method: str | None = None) -> list[Call]:
        with self._cond:
            return [c for c in self._calls if method is None or c.method == method]

    def message(self, channel: str, ts: str) -> Posted:
        with self._cond:
            return self._messages[(channel, ts)]

    def thread(self, channel: str, thread_ts: str) -> list[Posted]:
        """Messages posted in the thread of ``thread_ts``, oldest first."""
        with self._cond:
            return [
                m
                for (c, _ts), m in sorted(self._messages.items(), key=lambda kv: float(kv[0][1]))
                if c == channel and m.thread_ts == thread_ts
            ]

    def top_level(self, channel: str) -> list[Posted]:
        """Messages posted in ``channel`` outside any thread, oldest first."""
        with self._cond:
            return [
                m
                for (c, _ts), m in sorted(self._messages.items(), key=lambda kv: float(kv[0][1]))
                if c == channel and m.thread_ts is None
            ]

    def wait_for(self, predicate: Callable[[FakeSlack], T | None], timeout: float = 30.0) -> T:
        """Block until ``predicate(self)`` returns something truthy (re-checked on every call);
        raises ``AssertionError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = predicate(self)
                if found:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    methods = [c.method for c in self._calls]
                    raise AssertionError(f"timed out; calls so far: {methods}")
                self._cond.wait(left)

    # ------------------------------------------------------------------ serving
    def _answer(self, request: Recorded) -> Reply:
        method = request.path.removeprefix("/api/")
        args: dict[str, Any] = dict(parse_qsl(request.query))
        if isinstance(request.body, dict):
            args.update(request.body)
        elif request.raw:
            args.update(parse_qsl(request.raw.decode()))
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else args.get("token")
        with self._cond:
            self._calls.append(Call(method, args, token, self.clock()))
            body = self._route(method, args, token)
            self._cond.notify_all()
        return Reply(200, body)

    def _route(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        wanted = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != wanted:
            return {"ok": False, "error": "invalid_auth"}
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://agentfirm-test.slack.com/",
                "team": "agentfirm-test",
                "user": "agentfirm",
                "team_id": TEAM,
                "user_id": BOT_USER,
                "bot_id": "B0AGENTF",
            }
        if method == "apps.connections.open":
            if self.socket_url is None:
                return {"ok": False, "error": "not_allowed_token_type"}
            return {"ok": True, "url": self.socket_url}
        blocks = _blocks(args.get("blocks"))
        if blocks is None or not _blocks_fit(blocks):
            return {"ok": False, "error": "invalid_blocks"}
        if method == "chat.postMessage":
            if not args.get("channel"):
                return {"ok": False, "error": "channel_not_found"}
            ts = f"1700000000.{next(self._ts):06d}"
            text = str(args.get("text") or "")
            thread_ts = args.get("thread_ts") or None
            self._messages[(args["channel"], ts)] = Posted(
                args["channel"], ts, text, blocks, thread_ts, history=[text]
            )
            return {"ok": True, "channel": args["channel"], "ts": ts, "message": {"text": text}}
        if method == "chat.update":
            posted = self._messages.get((str(args.get("channel")), str(args.get("ts"))))
            if posted is None:
                return {"ok": False, "error": "message_not_found"}
            posted.text = str(args.get("text") or "")
            posted.blocks = blocks
            posted.edits += 1
            posted.history.append(posted.text)
            return {"ok": True, "channel": posted.channel, "ts": posted.ts, "text": posted.text}
        if method == "chat.postEphemeral":
            if not args.get("channel") or not args.get("user"):
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "message_ts": f"1700000000.{next(self._ts):06d}"}
        if method == "views.open":
            view = args.get("view")
            if isinstance(view, str):
                view = json.loads(view)
            if not args.get("trigger_id") or not isinstance(view, dict):
                return {"ok": False, "error": "invalid_arguments"}
            return {"ok": True, "view": {"id": "V0MODAL", **view}}
        if method == "users.info":
            return {"ok": True, "user": {"id": args.get("user"), "name": "someone"}}
        return {"ok": False, "error": "unknown_method"}


def _blocks(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if isinstance(raw, list) else None


def _blocks_fit(blocks: Sequence[Mapping[str, Any]]) -> bool:
    def texts(node: Any) -> list[str]:
        if isinstance(node, Mapping):
            own = [node["text"]] if isinstance(node.get("text"), str) else []
            return own + [t for v in node.values() for t in texts(v)]
        if isinstance(node, list):
            return [t for item in node for t in texts(item)]
        return []

    return len(blocks) <= _BLOCKS_LIMIT and all(len(t) <= _TEXT_LIMIT for t in texts(blocks))


# ---------------------------------------------------------------------------- Slack → the app
def signed(body: bytes, *, secret: str = SIGNING_SECRET, ts: int | None = None) -> dict[str, str]:
    """The headers Slack sends with ``body``: ``X-Slack-Signature`` v0, HMAC-SHA256 over
    ``v0:{ts}:{body}``, and ``X-Slack-Request-Timestamp`` (now unless given)."""
    stamp = str(int(time.time()) if ts is None else ts)
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {"X-Slack-Signature": "v0=" + digest.hexdigest(), "X-Slack-Request-Timestamp": stamp}


@dataclass(frozen=True)
class Payload:
    """A request as Slack posts it: body bytes and content type."""

    body: bytes
    content_type: str

    def headers(self, **sign: Any) -> dict[str, str]:
        return {"Content-Type": self.content_type, **signed(self.body, **sign)}


def mention(
    text: str, *, user: str, channel: str, ts: str, thread_ts: str | None = None
) -> Payload:
    """An ``app_mention`` event callback (``<@bot>`` prefixed to ``text``)."""
    event: dict[str, Any] = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    return _event(event)


def thread_reply(text: str, *, user: str, channel: str, ts: str, thread_ts: str) -> Payload:
    """A ``message`` event: a reply in a thread."""
    event = {
        "type": "message",
        "channel_type": "channel",
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel": channel,
        "event_ts": ts,
    }
    return _event(event)


def _event(event: dict[str, Any]) -> Payload:
    body = {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": "A0AGENTF",
        "event": event,
        "type": "event_callback",
        "event_id": f"Ev{uuid.uuid4().hex[:12].upper()}",
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
    }
    return Payload(json.dumps(body).encode(), "application/json")


def command(text: str, *, user: str, channel: str) -> Payload:
    """``/agentfirm text`` as Slack posts a slash command (a form)."""
    form = {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "channel_id": channel,
        "user_id": user,
        "command": "/agentfirm",
        "text": text,
        "response_url": "https://hooks.slack.invalid/commands/1",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "api_app_id": "A0AGENTF",
    }
    return Payload(urlencode(form).encode(), "application/x-www-form-urlencoded")


def click(
    action_id: str,
    value: str,
    *,
    user: str,
    channel: str,
    message_ts: str,
    thread_ts: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> Payload:
    """A ``block_actions`` interaction: ``user`` clicked a button in a message; ``values`` is
    the message's ``state.values`` (its input blocks)."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0AGENTF",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "trigger_id": f"trigger-{message_ts}-{action_id}",
        "channel": {"id": channel},
        "message": {"ts": message_ts, "thread_ts": thread_ts, "type": "message"},
        "state": {"values": dict(values or {})},
        "actions": [{"type": "button", "action_id": action_id, "value": value, "block_id": "b"}],
    }
    return _interaction(payload)


def submit_view(
    callback_id: str, private_metadata: str, values: Mapping[str, Any], *, user: str
) -> Payload:
    """A ``view_submission``: ``user`` submitted the modal ``callback_id``."""
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0AGENTF",
        "view": {
            "id": "V0MODAL",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": dict(values)},
        },
    }
    return _interaction(payload)


def _interaction(payload: Mapping[str, Any]) -> Payload:
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return Payload(body, "application/x-www-form-urlencoded")


def text_input(block_id: str, action_id: str, value: str | None) -> dict[str, Any]:
    """``state.values`` for one text input."""
    return {block_id: {action_id: {"type": "plain_text_input", "value": value}}}


# ---------------------------------------------------------------------------- a clock to drive
class ManualClock:
    """A ``Clock`` (``agentfirm.slack.throttle``) that moves only when a test calls ``advance``;
    pass ``clock.now`` to ``FakeSlack`` so recorded calls carry the same time."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._now + seconds, wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Move time on, wake every sleeper now due, and let them run to their next await."""
        self._now += seconds
        due = [(at, wake) for at, wake in self._sleepers if at <= self._now + 1e-9]
        self._sleepers = [s for s in self._sleepers if s not in due]
        for _at, wake in due:
            if not wake.done():
                wake.set_result(None)
        await asyncio.sleep(0)


# ---------------------------------------------------------------------------- Socket Mode
class SocketModeLink:
    """Slack's end of Socket Mode: a WebSocket server on loopback. Give its ``url`` to
    ``FakeSlack.socket_url`` so ``apps.connections.open`` hands it out; once the app connects
    (it gets Slack's ``hello``), ``send`` pushes an envelope and ``acked`` waits for the app's
    acknowledgement of it."""

    def __init__(self) -> None:
        from websockets.sync.server import serve

        self._cond = threading.Condition()
        self._connection: Any = None
        self._acks: dict[str, dict[str, Any]] = {}
        self._server = serve(self._handle, "127.0.0.1", 0)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SocketModeLink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}/link"

    def _handle(self, connection: Any) -> None:
        connection.send(json.dumps({"type": "hello", "num_connections": 1}))
        with self._cond:
            self._connection = connection
            self._cond.notify_all()
        from websockets.exceptions import ConnectionClosed

        with contextlib.suppress(ConnectionClosed):  # the app going away mid-read is no error
            for raw in connection:
                ack = json.loads(raw)
                with self._cond:
                    self._acks[str(ack.get("envelope_id"))] = ack
                    self._cond.notify_all()

    def send(self, kind: str, payload: Payload | Mapping[str, Any], timeout: float = 10.0) -> str:
        """Push an envelope of ``kind`` (``events_api``, ``interactive``, ``slash_commands``);
        ``payload`` as HTTP mode would receive it. Returns the envelope id."""
        if isinstance(payload, Payload):
            payload = _as_socket_payload(payload)
        envelope_id = uuid.uuid4().hex
        with self._cond:
            if not self._cond.wait_for(lambda: self._connection is not None, timeout):
                raise AssertionError("the app never connected")
            connection = self._connection
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": dict(payload),
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        connection.send(json.dumps(envelope))
        return envelope_id

    def acked(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: envelope_id in self._acks, timeout):
                raise AssertionError(f"envelope {envelope_id} was never acknowledged")
            return self._acks[envelope_id]


def _as_socket_payload(payload: Payload) -> dict[str, Any]:
    """An HTTP-mode payload as Socket Mode carries it: the JSON, or the form's ``payload``."""
    if payload.content_type == "application/json":
        data: dict[str, Any] = json.loads(payload.body)
        return data
    form = dict(parse_qsl(payload.body.decode()))
    return json.loads(form["payload"]) if "payload" in form else form
