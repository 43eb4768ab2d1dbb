"""The daemon's HTTP API: a FastAPI app over a ``TaskHost``, served on a Unix socket by
``process``. The OpenAPI document is at ``/openapi.json``.

Bad input is a 4xx with ``{"error": "one line"}`` (422 for a malformed request, 400 for one the
core refuses, 404 for an unknown id); a 5xx means a bug or a daemon shutting down. Every response
body goes through the redactor: no secret value leaves the daemon.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match, Route

import agentfirm
from agentfirm.api.models import (
    MAX_SEQ,
    ApprovalDecisionBody,
    ArtifactOutput,
    ArtifactRow,
    CancelBody,
    Costs,
    ErrorBody,
    Health,
    PersonaRow,
    Providers,
    RejectBody,
    ResumeBody,
    Resumed,
    TaskCreated,
    TaskDetail,
    TaskRow,
    TaskStatusBody,
    TaskSubmission,
    Transcript,
)
from agentfirm.api.views import task_costs, task_detail, task_rows, task_transcript
from agentfirm.api.wire import validation_message
from agentfirm.domain.decision import Decision
from agentfirm.domain.models import Approval
from agentfirm.errors import AgentfirmError, BadInput, ConfigError, NotFound
from agentfirm.money import parse_budget
from agentfirm.secrets import Redactor

from .body_limit import BodyLimit
from .outputs import artifact_output, artifact_rows
from .service import ShuttingDown, TaskHost

log = structlog.get_logger(__name__)

TaskId = Annotated[str, Path(max_length=200, description="A task id (`GET /tasks`).")]
ModuleId = Annotated[
    str, Path(max_length=200, description="A module id (`GET /tasks/{task_id}/artifacts`).")
]


_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (400, 404, 422)}


def _one_line(text: str) -> str:
    return " ".join(text.split())


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


def _usd(value: str | None) -> Decimal | None:
    """A budget as sent, checked by the one rule for every way a budget arrives (the words of
    ``--no-daemon``, naming the field)."""
    return parse_budget(value, name="budget_usd")


def _allowed(api: FastAPI, scope: Any) -> list[str]:
    """The methods some route takes at the path of ``scope`` (the ``Allow`` of a 405)."""
    methods: set[str] = set()
    for route in api.router.routes:
        if isinstance(route, Route) and route.matches(scope)[0] != Match.NONE:
            methods |= route.methods or set()
    return sorted(methods)


def create_app(host: TaskHost, *, redactor: Redactor, socket: str = "") -> FastAPI:
    """The API over ``host``. ``socket`` is only reported by ``/health``."""
    api = FastAPI(
        title="agentfirm daemon",
        version=agentfirm.__version__,
        description="Tasks, approvals, costs and events of the local agentfirm daemon.",
    )
    api.add_middleware(BodyLimit)

    def reply(data: Any, status_code: int = 200) -> JSONResponse:
        return JSONResponse(redactor.redact_obj(data), status_code=status_code)

    def fail(status_code: int, message: str) -> JSONResponse:
        return reply({"error": redactor.redact(message)}, status_code)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return fail(422, validation_message(exc.errors()))

    @api.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            return fail(404, f"no endpoint {where}: see GET /openapi.json for the daemon's API")
        if exc.status_code == 405:
            allowed = _allowed(api, request.scope)
            answer = fail(405, f"{where} is not allowed: use {' or '.join(allowed)}")
            answer.headers["Allow"] = ", ".join(allowed)
            return answer
        return fail(exc.status_code, _one_line(str(exc.detail)))

    @api.exception_handler(AgentfirmError)
    async def _refused(request: Request, exc: AgentfirmError) -> JSONResponse:
        if isinstance(exc, ConfigError):  # each problem too: a client says them as in-process
            body = {"error": _message(exc), "problems": list(exc.problems)}
            return reply(body, _status_for(exc))
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
            budget_usd=_usd(body.budget_usd),
            offline=body.offline,
            attachments=body.attachments,
            runner=body.runner,
            actor=body.actor,
            offline_latency_ms=body.offline_latency_ms,
            personas_dir=body.personas_dir,
            yes=body.yes,
            allowed_tools=body.allowed_tools,
        )
        return reply(created, 201)

    @api.get("/tasks", response_model=list[TaskRow], responses=_ERRORS)
    async def list_tasks(
        limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    ) -> JSONResponse:
        """Tasks, newest first (the shape of `agentfirm tasks list --json`). `waiting_on`: the
        kind of the question a task waits on (`clarify`, `plan`, `budget`, `review`, `failure`),
        else null; an `executing` task waiting on a failed module tells it only here."""
        return reply(await task_rows(host.app.store, limit=limit, driven=host.drives))

    @api.get("/tasks/{task_id}", response_model=TaskDetail, responses=_ERRORS)
    async def show_task(task_id: TaskId) -> JSONResponse:
        """One task with modules and transitions (the shape of `agentfirm tasks show --json`)."""
        return reply(await task_detail(host.app.store, task_id))

    @api.get("/tasks/{task_id}/costs", response_model=Costs, responses=_ERRORS)
    async def costs(
        task_id: TaskId,
        calls: Annotated[int, Query(ge=0, le=10_000, description="Calls in this page.")] = 50,
        after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ)] = 0,
    ) -> JSONResponse:
        """The task's costs from its running totals and one page of its calls (the shape of
        `agentfirm costs --json`); `next_after_seq` continues the calls."""
        return reply(await task_costs(host.app.store, task_id, calls=calls, after_seq=after_seq))

    @api.get("/tasks/{task_id}/artifacts", response_model=list[ArtifactRow], responses=_ERRORS)
    async def artifacts(task_id: TaskId) -> JSONResponse:
        """The latest output of each module (and of the draft, `_deliverable`): `module_id`,
        `kind`, `version`, `created_at`, `size` (bytes of its Markdown)."""
        return reply(await artifact_rows(host.app.store, task_id))

    @api.get(
        "/tasks/{task_id}/artifacts/{module_id}",
        response_model=ArtifactOutput,
        responses=_ERRORS,
    )
    async def artifact(task_id: TaskId, module_id: ModuleId) -> JSONResponse:
        """A module's latest output as Markdown (`markdown`) with the metadata of
        `GET /tasks/{task_id}/artifacts`; 404 until the module has output."""
        return reply(await artifact_output(host.app.store, task_id, module_id))

    @api.get("/tasks/{task_id}/transcript", response_model=Transcript, responses=_ERRORS)
    async def transcript(
        task_id: TaskId,
        module: Annotated[str | None, Query(description="Only this module's.")] = None,
    ) -> JSONResponse:
        """Every model turn and tool call, redacted, in order (the shape of `agentfirm tasks
        transcript --json`)."""
        return reply(await task_transcript(host.app.store, host.app.bus, task_id, module))

    @api.get("/tasks/{task_id}/approvals", response_model=list[Approval], responses=_ERRORS)
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

    @api.post("/approvals/{approval_id}", response_model=Approval, responses=_ERRORS)
    async def decide(
        approval_id: Annotated[str, Path(max_length=200)], body: ApprovalDecisionBody
    ) -> JSONResponse:
        """Decide an approval: `approved` (with `budget_usd` for a plan or budget, `answers`
        for a clarify), `revise` (a review; `modules` to re-run, default all), `retry` or `skip`
        (a failure), `rejected` or `aborted`."""
        answer = Decision(
            body.decision, body.notes, _usd(body.budget_usd), tuple(body.modules), body.answers
        )
        decided = await host.decide(approval_id, answer, actor=body.actor or "api")
        return reply(decided.model_dump(mode="json"))

    @api.post("/tasks/{task_id}/resume", response_model=Resumed, responses=_ERRORS)
    async def resume(task_id: TaskId, body: ResumeBody) -> JSONResponse:
        """Drive a stopped task again (with a new ceiling for one stopped for budget); follow
        its events after `after_seq` up to its `task.result`."""
        return reply(
            await host.resume(task_id, budget_usd=_usd(body.budget_usd), offline=body.offline)
        )

    @api.post("/tasks/{task_id}/reject", response_model=TaskStatusBody, responses=_ERRORS)
    async def reject(task_id: TaskId, body: RejectBody) -> JSONResponse:
        """Reject a task awaiting plan approval that nothing drives, or abort one stopped for
        budget (a driven task: decide its pending approval instead)."""
        return reply(await host.reject(task_id, actor=body.actor or "api", reason=body.reason))

    @api.post("/tasks/{task_id}/cancel", response_model=TaskStatusBody, responses=_ERRORS)
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

    @api.get("/personas", response_model=list[PersonaRow])
    async def personas() -> JSONResponse:
        """Every persona (the shape of `agentfirm personas list --json`)."""
        return reply(
            [
                PersonaRow(
                    id=p.id,
                    name=p.name,
                    modules=len(p.modules),
                    keywords=p.classification_keywords,
                ).model_dump()
                for p in host.app.personas.all()
            ]
        )

    @api.get("/providers", response_model=Providers)
    async def providers() -> JSONResponse:
        """Provider health, tier chains, and what keeps the router from serving, if anything."""
        return reply(host.providers())

    return api
