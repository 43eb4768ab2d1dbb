"""The request builder: one function per endpoint of the daemon's API, turning a front end's
arguments into a ``Call`` (method, path, query, body and how to read the answer). Pure: no I/O, so
the sync and the async client (``client.py``) send the very same requests.

Bodies are built from the wire models (``models.py``): a field the daemon would refuse is refused
here with the words the daemon uses, and no request is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote

from agentfirm.api.wire import Decision, Submission, validation_message
from agentfirm.errors import BadInput

if TYPE_CHECKING:
    from pydantic import BaseModel  # imported when a body is built: a read sends none

T = TypeVar("T")
Row = dict[str, Any]
Money = Decimal | float | str | None


def _row(data: Any) -> Row:
    if not isinstance(data, dict):
        raise BadInput(f"the daemon answered {type(data).__name__}, not an object")
    return data


def _rows(data: Any) -> list[Row]:
    if not isinstance(data, list):
        raise BadInput(f"the daemon answered {type(data).__name__}, not a list")
    return [_row(item) for item in data]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how its JSON answer is read."""

    method: str
    path: str
    read: Callable[[Any], T]
    params: Mapping[str, Any] = field(default_factory=dict)
    body: BaseModel | None = None

    def json(self) -> Any:
        """The body as sent: only the fields given, so an older daemon still takes it."""
        return None if self.body is None else self.body.model_dump(mode="json", exclude_unset=True)


def _segment(value: str) -> str:
    """An id as one path segment: a slash or a ``..`` in it cannot reach another endpoint."""
    return quote(value, safe="")


def _body(model: type[BaseModel], **given: Any) -> BaseModel:
    """``model`` from the fields given (None left out), refused as the daemon would refuse it."""
    from pydantic import ValidationError

    try:
        return model(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as err:
        raise BadInput(validation_message(err.errors())) from None


def _usd(value: Money) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------------------- endpoints
def health() -> Call[Row]:
    return Call("GET", "/health", _row)


def tasks(*, limit: int = 50) -> Call[list[Row]]:
    """Tasks, newest first (``tasks list --json``)."""
    return Call("GET", "/tasks", _rows, params={"limit": limit})


def task(task_id: str) -> Call[Row]:
    """One task with modules and transitions (``tasks show --json``)."""
    return Call("GET", f"/tasks/{_segment(task_id)}", _row)


def costs(task_id: str, *, calls: int = 50, after_seq: int = 0) -> Call[Row]:
    """Totals and one page of calls (``costs --json``): up to ``calls`` after ``after_seq``."""
    params = {"calls": calls, "after_seq": after_seq}
    return Call("GET", f"/tasks/{_segment(task_id)}/costs", _row, params=params)


def approvals(task_id: str, *, pending: bool = False) -> Call[list[Row]]:
    params = {"pending": "true"} if pending else {}
    return Call("GET", f"/tasks/{_segment(task_id)}/approvals", _rows, params=params)


def artifacts(task_id: str) -> Call[list[Row]]:
    """The latest output of each module: ``module_id``, ``kind``, ``created_at``, ``size``."""
    return Call("GET", f"/tasks/{_segment(task_id)}/artifacts", _rows)


def artifact(task_id: str, module_id: str) -> Call[Row]:
    """A module's latest output: its metadata and ``markdown``. ``NotFound`` until it has one."""
    return Call("GET", f"/tasks/{_segment(task_id)}/artifacts/{_segment(module_id)}", _row)


def transcript(task_id: str, *, module: str | None = None) -> Call[Row]:
    """Every model turn and tool call (``tasks transcript --json``), of one module if given."""
    params = {} if module is None else {"module": module}
    return Call("GET", f"/tasks/{_segment(task_id)}/transcript", _row, params=params)


def personas() -> Call[list[Row]]:
    return Call("GET", "/personas", _rows)


def providers() -> Call[Row]:
    return Call("GET", "/providers", _row)


def _fields(schema: Any) -> frozenset[str]:
    found = _row(schema).get("components", {}).get("schemas", {}).get("TaskSubmission", {})
    return frozenset(found.get("properties", {}))


def submission_fields() -> Call[frozenset[str]]:
    """The fields ``POST /tasks`` accepts, from the daemon's OpenAPI document: a form offers
    only what this daemon takes."""
    return Call("GET", "/openapi.json", _fields)


def submit(
    request: str | Submission,
    *,
    persona: str | None = None,
    budget_usd: Money = None,
    offline: bool = False,
    attachments: Sequence[Path | str] = (),
    runner: str | None = None,
    actor: str | None = None,
    offline_latency_ms: str | None = None,
    personas_dir: Path | str | None = None,
    yes: bool = False,
    allowed_tools: Sequence[str] = (),
) -> Call[Row]:
    """Create a task and start it (planned in the daemon, then waiting for its plan approval;
    follow its events): ``{task_id, status, persona}``. ``attachments``: absolute paths of files
    on the daemon's machine; ``actor``: who submits (``cli:alice``); the rest is the task's
    policy (``TaskSubmission``). A ``Submission`` carries the same fields."""
    from agentfirm.api import models  # pydantic models: built when a body is sent

    if isinstance(request, Submission):
        sub = request
    else:
        sub = Submission(
            request,
            persona,
            budget_usd,
            offline,
            tuple(map(str, attachments)),
            runner,
            actor,
            offline_latency_ms,
            None if personas_dir is None else str(personas_dir),
            yes,
            tuple(allowed_tools),
        )
    body = _body(
        models.TaskSubmission,
        request=sub.request,
        persona=sub.persona,
        budget_usd=_usd(sub.budget_usd),
        offline=sub.offline or None,
        attachments=list(sub.attachments) or None,
        runner=sub.runner,
        actor=sub.actor,
        offline_latency_ms=sub.offline_latency_ms,
        personas_dir=sub.personas_dir,
        yes=sub.yes or None,
        allowed_tools=list(sub.allowed_tools) or None,
    )
    return Call("POST", "/tasks", _row, body=body)


def decide(
    approval_id: str,
    decision: str | Decision,
    *,
    actor: str | None = None,
    notes: str = "",
    budget_usd: Money = None,
    modules: Collection[str] = (),
    answers: Mapping[str, str] | None = None,
) -> Call[Row]:
    """Decide an approval (see ``StoreDecider.decide``; ``answers`` for a clarify question, by
    question id): the decided row. A ``Decision`` carries the same fields."""
    from agentfirm.api import models  # pydantic models: built when a body is sent

    if not isinstance(decision, Decision):
        decision = Decision(decision, notes, budget_usd, tuple(modules), answers)
    body = _body(
        models.ApprovalDecisionBody,
        decision=decision.decision,
        actor=actor,
        notes=decision.notes,
        budget_usd=_usd(decision.budget_usd),
        modules=list(decision.modules),
        answers=None if decision.answers is None else dict(decision.answers),
    )
    return Call("POST", f"/approvals/{_segment(approval_id)}", _row, body=body)


def resume(task_id: str, *, budget_usd: Money = None, offline: bool = False) -> Call[Row]:
    """Drive a stopped task again (``offline``: from now on with the offline provider):
    ``{task_id, status, after_seq}`` — its events after ``after_seq`` are this run's, up to its
    ``task.result``."""
    from agentfirm.api import models  # pydantic models: built when a body is sent

    body = _body(models.ResumeBody, budget_usd=_usd(budget_usd), offline=offline or None)
    return Call("POST", f"/tasks/{_segment(task_id)}/resume", _row, body=body)


def cancel(task_id: str, *, reason: str, actor: str | None = None) -> Call[Row]:
    from agentfirm.api import models  # pydantic models: built when a body is sent

    body = _body(models.CancelBody, reason=reason, actor=actor)
    return Call("POST", f"/tasks/{_segment(task_id)}/cancel", _row, body=body)


def reject(task_id: str, *, reason: str, actor: str | None = None) -> Call[Row]:
    """Reject a planned task nothing drives (or abort one stopped for budget)."""
    from agentfirm.api import models  # pydantic models: built when a body is sent

    body = _body(models.RejectBody, reason=reason, actor=actor)
    return Call("POST", f"/tasks/{_segment(task_id)}/reject", _row, body=body)


def events(task_id: str, *, after_seq: int = 0) -> Call[Row]:
    """The task's event stream after ``after_seq``: one JSON object a line (``read`` decodes a
    line's)."""
    return Call("GET", f"/tasks/{_segment(task_id)}/events", _row, params={"after_seq": after_seq})
