"""The daemon's HTTP API: a FastAPI app over a ``TaskHost``, served on a Unix socket by
``process``. The OpenAPI document is at ``/openapi.json``.

Bad input is a 4xx with ``{"error": "one line"}`` (422 for a malformed request, 400 for one the
core refuses, 404 for an unknown id); a 5xx means a bug or a daemon shutting down. Every response
body goes through the redactor: no secret value leaves the daemon.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from typing import Annotated, Any, Literal

import structlog
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

import agentfirm
from agentfirm.errors import AgentfirmError, BadInput, ConfigError, NotFound
from agentfirm.secrets import Redactor
from agentfirm.views import task_costs, task_detail, task_rows

from .outputs import artifact_output, artifact_rows
from .service import MAX_ATTACHMENTS, ShuttingDown, TaskHost

log = structlog.get_logger(__name__)

MAX_SEQ = 2**53
SUBMITTER = r"^(cli|tui|slack|auto|api):[A-Za-z0-9_.@-]{1,64}$"
"""Who submits a task, as the front end names them: ``slack:U123``, ``cli:alice``."""


def _encodable(value: str) -> str:
    """Refuse lone surrogates: JSON escapes can carry them, and no store can write them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid Unicode text") from None
    return value


def _absolute(value: str) -> str:
    if "\x00" in value or not value.startswith("/"):
        raise ValueError("is not an absolute path")
    return value


def _submitter(value: str) -> str:
    if re.fullmatch(SUBMITTER, value) is None:
        raise ValueError(
            "must be a front end (cli, tui, slack, auto or api), a colon and a user of 1-64 "
            "letters, digits or _.@- (e.g. slack:U123ABC)"
        )
    return value


Text = Annotated[str, Field(max_length=20_000), AfterValidator(_encodable)]
FilePath = Annotated[
    str, Field(min_length=1, max_length=4096), AfterValidator(_encodable), AfterValidator(_absolute)
]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_encodable)]
Usd = Annotated[Decimal, Field(gt=0, le=1_000_000, allow_inf_nan=False)]
TaskId = Annotated[str, Path(max_length=200, description="A task id (`GET /tasks`).")]
ModuleId = Annotated[
    str, Path(max_length=200, description="A module id (`GET /tasks/{task_id}/artifacts`).")
]
Submitter = Annotated[
    str,
    Field(max_length=80, json_schema_extra={"pattern": SUBMITTER}),
    AfterValidator(_submitter),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSubmission(_Body):
    request: Annotated[Text, Field(min_length=1)]
    persona: Name | None = Field(default=None, description="Skip classification.")
    budget_usd: Usd | None = Field(default=None, description="Default: the configured budget.")
    offline: bool = Field(default=False, description="Serve this task with the offline provider.")
    attachments: list[FilePath] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Files the task reads: absolute paths on the daemon's machine, copied and "
        "indexed at intake.",
    )
    runner: Literal["inproc", "notebook", "colab"] | None = Field(
        default=None, description="Where the modules run (default: the daemon's settings)."
    )
    actor: Submitter | None = Field(
        default=None,
        description="Who submits, for the creation transition, e.g. slack:U123 (default: "
        "the daemon).",
    )


class TaskCreated(BaseModel):
    task_id: str
    status: str
    persona: str | None


class ApprovalDecisionBody(_Body):
    decision: Literal["approved", "revise", "rejected", "aborted", "retry", "skip"]
    budget_usd: Usd | None = Field(
        default=None,
        description="Plan: the ceiling (default: the proposed one). Budget: the new ceiling.",
    )
    notes: Text = ""
    modules: list[Name] = Field(
        default_factory=list, max_length=200, description="Modules a revision re-runs."
    )
    answers: dict[Name, Text] | None = Field(
        default=None, max_length=100, description="Clarify: the answers, by question id."
    )
    actor: Name | None = Field(default=None, description="Who decides, e.g. cli:alice.")


class ResumeBody(_Body):
    budget_usd: Usd | None = None
    offline: bool = Field(
        default=False, description="Serve the task with the offline provider from now on."
    )


class Resumed(BaseModel):
    task_id: str
    status: str
    after_seq: int = Field(description="The task's last event before: this run's events follow.")


class CancelBody(_Body):
    reason: Text = "cancelled through the daemon API"
    actor: Name | None = None


class RejectBody(_Body):
    reason: Text = "rejected through the daemon API"
    actor: Name | None = None


class Health(BaseModel):
    ok: bool
    version: str
    pid: int
    socket: str
    tasks_driving: int


class ErrorBody(BaseModel):
    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 404, 422)}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _validation_message(errors: Sequence[Any]) -> str:
    parts = []
    for error in errors[:3]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return _one_line("; ".join(parts) + more) or "invalid request"


def _status_for(err: AgentfirmError) -> int:
    if isinstance(err, NotFound):
        return 404
    if isinstance(err, ShuttingDown):
        return 503
    if isinstance(err, BadInput):
        return 400
    return 409


def _message(err: AgentfirmError) -> str:
    if isinstance(err, ConfigError):
        return _one_line(
            f"{len(err.problems)} configuration problem(s): " + "; ".join(err.problems)
        )
    return _one_line(str(err))


def create_app(host: TaskHost, *, redactor: Redactor, socket: str = "") -> FastAPI:
    """The API over ``host``. ``socket`` is only reported by ``/health``."""
    api = FastAPI(
        title="agentfirm daemon",
        version=agentfirm.__version__,
        description="Tasks, approvals, costs and events of the local agentfirm daemon.",
    )

    def reply(data: Any, status_code: int = 200) -> JSONResponse:
        return JSONResponse(redactor.redact_obj(data), status_code=status_code)

    def fail(status_code: int, message: str) -> JSONResponse:
        return reply({"error": redactor.redact(message)}, status_code)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return fail(422, _validation_message(exc.errors()))

    @api.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        return fail(exc.status_code, _one_line(str(exc.detail)))

    @api.exception_handler(AgentfirmError)
    async def _refused(request: Request, exc: AgentfirmError) -> JSONResponse:
        return fail(_status_for(exc), _message(exc))

    @api.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("daemon.api_error", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return fail(500, f"internal error: {type(exc).__name__} (see the daemon log)")

    @api.get("/health", response_model=Health)
    async def health() -> JSONResponse:
        """Liveness and identity of the daemon."""
        return reply(
            Health(
                ok=not host.stopping.is_set(),
                version=agentfirm.__version__,
                pid=os.getpid(),
                socket=socket,
                tasks_driving=host.driving_count(),
            ).model_dump()
        )

    @api.post("/tasks", response_model=TaskCreated, status_code=201, responses=_ERRORS)
    async def submit(body: TaskSubmission) -> JSONResponse:
        """Create and classify a task, then drive it in the background: it is planned (its
        clarifying questions, if any, are approvals to answer) and waits for its plan approval
        (see `GET /tasks/{id}/approvals`). Its events tell how far it got."""
        created = await host.submit(
            body.request,
            persona=body.persona,
            budget_usd=body.budget_usd,
            offline=body.offline,
            attachments=body.attachments,
            runner=body.runner,
            actor=body.actor,
        )
        return reply(created, 201)

    @api.get("/tasks", responses=_ERRORS)
    async def list_tasks(
        limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    ) -> JSONResponse:
        """Tasks, newest first (the shape of `agentfirm tasks list --json`). `waiting_on`: the
        kind of the question a task waits on (`clarify`, `plan`, `budget`, `review`, `failure`),
        else null; an `executing` task waiting on a failed module tells it only here."""
        return reply(await task_rows(host.app.store, limit=limit))

    @api.get("/tasks/{task_id}", responses=_ERRORS)
    async def show_task(task_id: TaskId) -> JSONResponse:
        """One task with modules and transitions (the shape of `agentfirm tasks show --json`)."""
        return reply(await task_detail(host.app.store, task_id))

    @api.get("/tasks/{task_id}/costs", responses=_ERRORS)
    async def costs(task_id: TaskId) -> JSONResponse:
        """The task's costs and every call (the shape of `agentfirm costs --json`)."""
        return reply(await task_costs(host.app.store, task_id))

    @api.get("/tasks/{task_id}/artifacts", responses=_ERRORS)
    async def artifacts(task_id: TaskId) -> JSONResponse:
        """The latest output of each module (and of the draft, `_deliverable`): `module_id`,
        `kind`, `version`, `created_at`, `size` (bytes of its Markdown)."""
        return reply(await artifact_rows(host.app.store, task_id))

    @api.get("/tasks/{task_id}/artifacts/{module_id}", responses=_ERRORS)
    async def artifact(task_id: TaskId, module_id: ModuleId) -> JSONResponse:
        """A module's latest output as Markdown (`markdown`) with the metadata of
        `GET /tasks/{task_id}/artifacts`; 404 until the module has output."""
        return reply(await artifact_output(host.app.store, task_id, module_id))

    @api.get("/tasks/{task_id}/approvals", responses=_ERRORS)
    async def approvals(
        task_id: TaskId,
        pending: Annotated[bool, Query(description="Only undecided ones.")] = False,
    ) -> JSONResponse:
        """The task's approvals, oldest first; each payload carries what to show the human."""
        await host.app.store.get_task(task_id)
        rows = await host.app.store.list_approvals(task_id)
        return reply(
            [a.model_dump(mode="json") for a in rows if a.decision == "pending" or not pending]
        )

    @api.post("/approvals/{approval_id}", responses=_ERRORS)
    async def decide(
        approval_id: Annotated[str, Path(max_length=200)], body: ApprovalDecisionBody
    ) -> JSONResponse:
        """Decide an approval: `approved` (with `budget_usd` for a plan or budget, `answers`
        for a clarify), `revise` (a review; `modules` to re-run, default all), `retry` or `skip`
        (a failure), `rejected` or `aborted`."""
        decided = await host.decide(
            approval_id,
            body.decision,
            actor=body.actor or "api",
            notes=body.notes,
            budget_usd=body.budget_usd,
            modules=body.modules,
            answers=body.answers,
        )
        return reply(decided.model_dump(mode="json"))

    @api.post("/tasks/{task_id}/resume", response_model=Resumed, responses=_ERRORS)
    async def resume(task_id: TaskId, body: ResumeBody) -> JSONResponse:
        """Drive a stopped task again (with a new ceiling for one stopped for budget); follow
        its events after `after_seq` up to its `task.result`."""
        return reply(await host.resume(task_id, budget_usd=body.budget_usd, offline=body.offline))

    @api.post("/tasks/{task_id}/reject", responses=_ERRORS)
    async def reject(task_id: TaskId, body: RejectBody) -> JSONResponse:
        """Reject a task awaiting plan approval that nothing drives, or abort one stopped for
        budget (a driven task: decide its pending approval instead)."""
        return reply(await host.reject(task_id, actor=body.actor or "api", reason=body.reason))

    @api.post("/tasks/{task_id}/cancel", responses=_ERRORS)
    async def cancel(task_id: TaskId, body: CancelBody) -> JSONResponse:
        """Abort a task: its work stops, open questions are marked aborted."""
        return reply(await host.cancel(task_id, actor=body.actor or "api", reason=body.reason))

    @api.get(
        "/tasks/{task_id}/events",
        responses={
            **_ERRORS,
            200: {
                "description": "One JSON event per line, in seq order.",
                "content": {"application/x-ndjson": {}},
            },
        },
    )
    async def events(
        task_id: TaskId,
        after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    ) -> StreamingResponse:
        """The task's events after `after_seq`, then live ones, as JSON lines; the stream ends
        when the task is final. Reconnect with the last `seq` seen to resume. Each time the
        daemon stops driving the task it publishes `task.result`: `{"result": …}` (the shape of
        `agentfirm run --json`) or `{"error", "exit_code"}` when it refused to drive it."""
        await host.app.store.get_task(task_id)

        async def lines() -> AsyncIterator[bytes]:
            async for event in host.follow(task_id, after_seq=after_seq):
                yield (redactor.redact(event.model_dump_json()) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @api.get("/personas")
    async def personas() -> JSONResponse:
        """Every persona (the shape of `agentfirm personas list --json`)."""
        return reply(
            [
                {
                    "id": p.id,
                    "name": p.name,
                    "modules": len(p.modules),
                    "keywords": p.classification_keywords,
                }
                for p in host.app.personas.all()
            ]
        )

    @api.get("/providers")
    async def providers() -> JSONResponse:
        """Provider health, tier chains, and what keeps the router from serving, if anything."""
        return reply(host.providers())

    return api
