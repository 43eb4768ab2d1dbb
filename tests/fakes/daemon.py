"""One fake daemon for the front ends' tests (the TUI, the Slack bridge): the async client of the
daemon's API (``AsyncDaemonClient``, the seam every front end talks through) answering from memory.

Requests go through the real request builder (``agentfirm.api.calls``): bodies are validated by
the wire models exactly as the daemon validates them, and ``send`` answers each ``Call`` by its
method and path, as the daemon's routes do. The test scripts the daemon's side: tasks, events
(``publish``, ``push``), questions (``ask``), the end of a task (``end``).

``FakeDaemon`` holds the state; ``ScriptedDaemon`` is the flavour the Slack flows script (a task per
submission, every decision answered with ``approval.decided``); the TUI's fixed data set is
``tests.tui.fixed_data.FakeSource``.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from agentfirm.api import models
from agentfirm.api.calls import Call
from agentfirm.api.client import AsyncDaemonClient
from agentfirm.api.wire import Decision, Submission
from agentfirm.domain.status import FINAL_STATUSES
from agentfirm.errors import BadInput, NotFound
from agentfirm.money import parse_budget

Row = dict[str, Any]
Handler = Callable[..., Any]

PERSONAS: list[Row] = [
    {"id": "competitive_analysis", "name": "Competitive Analysis"},
    {"id": "long_form_article", "name": "Long-Form Article"},
    {"id": "patent_research", "name": "Patent Research"},
]


class FakeDaemon(AsyncDaemonClient):
    """The daemon's API over in-memory tasks, events, approvals, costs and outputs."""

    def __init__(self) -> None:
        super().__init__("/nonexistent/fake-daemon.sock")
        self.details: dict[str, Row] = {}
        """``GET /tasks/{id}`` by task id; its ``status`` says when its stream ends."""
        self.task_rows: list[Row] = []
        """``GET /tasks``, newest first (``waiting_on`` is worked out as the daemon does)."""
        self.event_lists: dict[str, list[Row]] = {}
        self.approval_rows: dict[str, list[Row]] = {}
        self.cost_rows: dict[str, Row] = {}
        self.outputs: dict[tuple[str, str], Row] = {}
        """Module outputs by (task id, module id): none unless a test adds them."""
        self.persona_rows = PERSONAS
        self.fields = frozenset(models.TaskSubmission.model_fields)
        """What ``POST /tasks`` takes (an older daemon takes fewer)."""
        self.submit_to: str | None = None
        """The task a submission answers with; None: a new task each time."""
        self.decided: list[tuple[str, Decision, str]] = []
        self.submissions: list[Submission] = []
        self.approval_reads: list[str] = []
        """Task ids whose approvals were read, in order."""
        self.followed_from: list[int] = []
        """The ``after_seq`` of every stream opened."""
        self.moved_past: dict[str, int] = {}
        self._grown: dict[str, asyncio.Event] = {}
        self._moved = asyncio.Event()
        self._ids = itertools.count(1)
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (method, re.compile(f"^{pattern}$"), handler)
            for method, pattern, handler in (
                ("GET", "/health", self._api_health),
                ("GET", "/tasks", self._api_tasks),
                ("POST", "/tasks", self._api_submit),
                ("GET", "/tasks/(?P<task_id>[^/]+)", self._api_task),
                ("GET", "/tasks/(?P<task_id>[^/]+)/costs", self._api_costs),
                ("GET", "/tasks/(?P<task_id>[^/]+)/approvals", self._api_approvals),
                ("GET", "/tasks/(?P<task_id>[^/]+)/artifacts", self._api_artifacts),
                (
                    "GET",
                    "/tasks/(?P<task_id>[^/]+)/artifacts/(?P<module_id>[^/]+)",
                    self._api_output,
                ),
                ("POST", "/tasks/(?P<task_id>[^/]+)/cancel", self._api_cancel),
                ("POST", "/approvals/(?P<approval_id>[^/]+)", self._api_decide),
                ("GET", "/personas", lambda **_: self.persona_rows),
                ("GET", "/openapi.json", self._api_openapi),
            )
        ]

    # ------------------------------------------------------------------ the API
    async def send(self, call: Call[Any]) -> Any:
        for method, pattern, handler in self._routes:
            found = pattern.match(call.path)
            if method == call.method and found is not None:
                path = {k: unquote(v) for k, v in found.groupdict().items()}
                answer = handler(**path, params=call.params, body=call.body)
                return call.read(await answer if asyncio.iscoroutine(answer) else answer)
        raise NotFound(f"no endpoint {call.method} {call.path}")

    async def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[Row]:
        """The log after ``after_seq``, then what is published, until the task is final."""
        self._detail(task_id)
        self.followed_from.append(after_seq)
        log, index = self.event_lists.setdefault(task_id, []), 0
        grown = self._grown.setdefault(task_id, asyncio.Event())
        while True:
            while index < len(log):
                event, index = log[index], index + 1
                if int(event["seq"]) > after_seq:
                    yield event
                    self.moved_past[task_id] = int(event["seq"])  # the consumer handled it
                    self._moved.set()
            if self._detail(task_id).get("status") in FINAL_STATUSES:
                return
            grown.clear()
            await grown.wait()

    def _detail(self, task_id: str) -> Row:
        if task_id not in self.details:
            raise NotFound(f"task {task_id} not found")
        return self.details[task_id]

    def _api_health(self, **_: Any) -> Row:
        return {"ok": True, "version": "fake", "pid": 0, "socket": str(self.socket)}

    def _api_tasks(self, *, params: Mapping[str, Any], **_: Any) -> list[Row]:
        limit = int(params.get("limit", 50))
        return [{**row, "waiting_on": self._waiting_on(row)} for row in self.task_rows[:limit]]

    def _waiting_on(self, row: Row) -> str | None:
        """As the daemon tells it: the kind of the oldest pending approval of a task not final."""
        if self._detail(row["task_id"]).get("status") in FINAL_STATUSES:
            return None
        pending = [a for a in self.approval_rows.get(row["task_id"], []) if _pending(a)]
        return str(pending[0]["kind"]) if pending else None

    def _api_task(self, task_id: str, **_: Any) -> Row:
        return dict(self._detail(task_id))

    def _api_costs(self, task_id: str, **_: Any) -> Row:
        self._detail(task_id)
        return self.cost_rows.get(task_id) or {"total_usd": 0.0, "simulated": True}

    def _api_approvals(self, task_id: str, *, params: Mapping[str, Any], **_: Any) -> list[Row]:
        self._detail(task_id)
        self.approval_reads.append(task_id)
        pending = params.get("pending") == "true"
        return [dict(a) for a in self.approval_rows.get(task_id, []) if _pending(a) or not pending]

    def _api_artifacts(self, task_id: str, **_: Any) -> list[Row]:
        self._detail(task_id)
        return [row for (task, _module), row in sorted(self.outputs.items()) if task == task_id]

    def _api_output(self, task_id: str, module_id: str, **_: Any) -> Row:
        self._detail(task_id)
        if (task_id, module_id) not in self.outputs:
            raise NotFound(f"module {module_id} of task {task_id} has no output yet")
        return self.outputs[(task_id, module_id)]

    def _api_openapi(self, **_: Any) -> Row:
        fields = {name: {} for name in self.fields}
        return {"components": {"schemas": {"TaskSubmission": {"properties": fields}}}}

    def _api_submit(self, *, body: models.TaskSubmission, **_: Any) -> Row:
        self.submissions.append(
            Submission(
                body.request,
                body.persona,
                parse_budget(body.budget_usd),
                body.offline,
                tuple(body.attachments),
                body.runner,
                body.actor,
            )
        )
        task_id = self.submit_to or self.add_task(f"t_{next(self._ids)}", body.request)
        detail = self._detail(task_id)
        return {"task_id": task_id, "status": detail["status"], "persona": detail["persona"]}

    def _api_decide(self, approval_id: str, *, body: models.ApprovalDecisionBody, **_: Any) -> Row:
        row = next(
            (r for rows in self.approval_rows.values() for r in rows if r["id"] == approval_id),
            None,
        )
        if row is None:
            raise NotFound(f"approval {approval_id} not found")
        if not _pending(row):
            raise BadInput(f"approval {approval_id} was already decided")
        budget = parse_budget(body.budget_usd)
        decision = Decision(body.decision, body.notes, budget, tuple(body.modules), body.answers)
        actor = body.actor or "api"
        row.update(decision=decision.decision, actor=actor, notes=decision.notes)
        self.decided.append((approval_id, decision, actor))
        self.on_decided(row, decision, actor)
        return dict(row)

    def _api_cancel(self, task_id: str, **_: Any) -> Row:
        self._detail(task_id)["status"] = "aborted"
        self._wake(task_id)
        return {"task_id": task_id, "status": "aborted"}

    def on_decided(self, row: Row, decision: Decision, actor: str) -> None:
        """What the daemon does once a question is decided: nothing here."""

    # ------------------------------------------------------------------ the script
    def add_task(self, task_id: str, request: str, *, status: str = "classified") -> str:
        self.details[task_id] = {"task_id": task_id, "request": request, "status": status}
        self.details[task_id]["persona"] = "p"
        self.task_rows.insert(0, {"task_id": task_id, "status": status, "request": request})
        self.event_lists.setdefault(task_id, [])
        self.approval_rows.setdefault(task_id, [])
        return task_id

    def publish(
        self, task_id: str, kind: str, payload: Mapping[str, Any] | None = None, **extra: Any
    ) -> Row:
        """A new event of the task (the next seq), to every open stream."""
        log = self.event_lists.setdefault(task_id, [])
        seq = len(log) + 1
        event = {
            "id": f"ev_{task_id}_{seq}",
            "task_id": task_id,
            "stream": "events",
            "seq": seq,
            "type": kind,
            "module_id": None,
            "ts": datetime.now(UTC).isoformat(),
            "payload": dict(payload or {}),
            **extra,
        }
        log.append(event)
        self._wake(task_id)
        return event

    def push(self, task_id: str, events: list[Row]) -> None:
        """Events as given (seqs and all: a replay overlapping what was sent is a case too)."""
        self.event_lists.setdefault(task_id, []).extend(events)
        self._wake(task_id)

    def ask(self, task_id: str, kind: str, payload: Mapping[str, Any]) -> str:
        """A question of ``kind``, announced with ``approval.requested``; its id."""
        approval_id = f"ap_{next(self._ids)}"
        row = {
            "id": approval_id,
            "task_id": task_id,
            "kind": kind,
            "decision": "pending",
            "actor": None,
            "notes": "",
            "payload": dict(payload),
            "created_at": datetime.now(UTC).isoformat(),
            "decided_at": None,
        }
        self.approval_rows.setdefault(task_id, []).append(row)
        self.publish(task_id, "approval.requested", {"approval_id": approval_id, "kind": kind})
        return approval_id

    def end(self, task_id: str, status: str) -> None:
        """The task is final: its streams end once they have sent what was published."""
        self._detail(task_id)["status"] = status
        self._wake(task_id)

    async def handled(self, task_id: str, seq: int) -> None:
        """Until the consumer has handled the event ``seq`` (it asked for the next one)."""
        while self.moved_past.get(task_id, 0) < seq:
            self._moved.clear()
            await self._moved.wait()

    def _wake(self, task_id: str) -> None:
        self._grown.setdefault(task_id, asyncio.Event()).set()


def _pending(row: Row) -> bool:
    return bool(row["decision"] == "pending")


class ScriptedDaemon(FakeDaemon):
    """The Slack flows' daemon: a task per submission; every decision is queued for the test
    (``decision``) and answered with ``approval.decided``, as the daemon does."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = self.approval_rows
        self.decisions: asyncio.Queue[Row] = asyncio.Queue()

    @property
    def requests(self) -> list[str]:
        return [s.request for s in self.submissions]

    @property
    def actors(self) -> list[str | None]:
        return [s.actor for s in self.submissions]

    def add_task(self, task_id: str, request: str, *, status: str = "classified") -> str:
        super().add_task(task_id, request, status=status)
        self.cost_rows[task_id] = {"total_usd": 0.5, "simulated": True, "by_module": {"a": 0.5}}
        return task_id

    def on_decided(self, row: Row, decision: Decision, actor: str) -> None:
        budget = decision.budget_usd
        decided = {
            "approval_id": row["id"],
            "kind": row["kind"],
            "decision": decision.decision,
            "actor": actor,
            "notes": decision.notes,
            "budget_usd": None if budget is None else float(budget),
            "modules": list(decision.modules),
            "answers": None if decision.answers is None else dict(decision.answers),
        }
        self.decisions.put_nowait(decided)
        self.publish(row["task_id"], "approval.decided", decided)

    async def decision(self) -> Row:
        async with asyncio.timeout(10):
            return await self.decisions.get()
