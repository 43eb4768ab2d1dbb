"""The daemon API's wire shapes (ARCHITECTURE.md §11), shared by the server (FastAPI validates the
requests and documents every answer with them) and the clients (which build the requests from
them). Field names are the contract: front ends and scripts read them.

Light on purpose: pydantic and the domain models only, no FastAPI or httpx.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from agentfirm.domain.models import Approval, Event, Tier
from agentfirm.domain.policy import TaskPolicy

MAX_ATTACHMENTS = 100
"""Files one submission may attach (the daemon copies and indexes each at intake)."""
MAX_SEQ = 2**53
UNRECORDED = "unrecorded"
"""Set in the payload of a notice the daemon hands out though its event log could not record it
(how a driver ended, on a full disk): it carries the seq of the last recorded event, and a
follower passes it on though that seq was seen."""
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


def fit_submitter(actor: str) -> str:
    """``front:user`` as the daemon takes it: a user outside ``[A-Za-z0-9_.@-]{1,64}`` is made
    to fit (a login name with a space must not refuse the submission)."""
    front, _, user = actor.partition(":")
    user = re.sub(r"[^A-Za-z0-9_.@-]", "_", user)[:64]
    return f"{front}:{user or 'unknown'}"


Text = Annotated[str, Field(max_length=20_000), AfterValidator(_encodable)]
FilePath = Annotated[
    str, Field(min_length=1, max_length=4096), AfterValidator(_encodable), AfterValidator(_absolute)
]
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_encodable)]
USD_PATTERN = r"^\s*\$?\s*[0-9]+(\.[0-9]*)?\s*$"


def _as_text(value: Any) -> Any:
    """A number is kept as the text it was sent as: the core reads exactly that amount."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return str(value)
    return value


Usd = Annotated[
    str,
    BeforeValidator(_as_text),
    Field(max_length=40),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0.0001, "maximum": 1_000_000},
                {"type": "string", "pattern": USD_PATTERN, "maxLength": 40},
            ],
            "description": "US dollars, at least 0.0001 and at most 1,000,000: a number or its "
            "decimal text.",
        }
    ),
]
"""A budget as sent. The core checks the amount (``parse_budget``), so the daemon and
``--no-daemon`` refuse the same amounts in the same words."""
Submitter = Annotated[
    str,
    Field(max_length=80, json_schema_extra={"pattern": SUBMITTER}),
    AfterValidator(_submitter),
]
Runner = Literal["inproc", "notebook", "colab", "worker"]
Latency = Annotated[str, Field(max_length=40, pattern=r"^\s*\d{1,7}\s*(-\s*\d{1,7}\s*)?$")]
Decision = Literal["approved", "revise", "rejected", "aborted", "retry", "skip"]


# ---------------------------------------------------------------------------- requests
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskSubmission(_Body):
    """``POST /tasks``."""

    request: Text = Field(description="What the task is for; an empty one is refused.")
    persona: Name | None = Field(default=None, description="Skip classification.")
    budget_usd: Usd | None = Field(default=None, description="Default: the configured budget.")
    offline: bool = Field(default=False, description="Serve this task with the offline provider.")
    attachments: list[FilePath] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Files the task reads: absolute paths on the daemon's machine, copied and "
        "indexed at intake.",
    )
    runner: Runner | None = Field(
        default=None, description="Where the modules run (default: the daemon's settings)."
    )
    actor: Submitter | None = Field(
        default=None,
        description="Who submits, for the creation transition, e.g. slack:U123 (default: "
        "the daemon).",
    )
    offline_latency_ms: Latency | None = Field(
        default=None,
        description="The offline provider's simulated latency, N or MIN-MAX milliseconds "
        "(default: the daemon's settings).",
    )
    personas_dir: FilePath | None = Field(
        default=None,
        description="The submitter's persona directory, read for this task (default: the "
        "personas the daemon loaded at its start).",
    )
    yes: bool = Field(
        default=False,
        description="Answer every question of the task non-interactively, as --yes does: "
        "approve the plan and the draft, never add budget, fail on a failed module.",
    )
    allowed_tools: list[Name] = Field(
        default_factory=list,
        max_length=200,
        description="With yes: the tools that may change things let run (--allow-tool); "
        "every other such tool is denied.",
    )


class ApprovalDecisionBody(_Body):
    """``POST /approvals/{approval_id}``."""

    decision: Decision
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
    """``POST /tasks/{task_id}/resume``."""

    budget_usd: Usd | None = None
    offline: bool = Field(
        default=False, description="Serve the task with the offline provider from now on."
    )


class CancelBody(_Body):
    """``POST /tasks/{task_id}/cancel``."""

    reason: Text = "cancelled through the daemon API"
    actor: Name | None = None


class RejectBody(_Body):
    """``POST /tasks/{task_id}/reject``."""

    reason: Text = "rejected through the daemon API"
    actor: Name | None = None


# ---------------------------------------------------------------------------- answers
class ErrorBody(BaseModel):
    """Every 4xx and 5xx: one line saying what, where and how to fix it."""

    error: str


class Health(BaseModel):
    ok: bool
    version: str
    pid: int
    socket: str
    tasks_driving: int


class TaskCreated(BaseModel):
    task_id: str
    status: str
    persona: str | None


class Resumed(BaseModel):
    task_id: str
    status: str
    after_seq: int = Field(description="The task's last event before: this run's events follow.")


class TaskStatusBody(BaseModel):
    """What cancel and reject answer."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    status: str


class TaskRow(BaseModel):
    """A row of ``GET /tasks`` (``agentfirm tasks list --json``)."""

    task_id: str
    status: str
    persona: str | None
    request: str
    budget_usd: float
    cost_usd: float
    created_at: str
    waiting_on: str | None = Field(
        description="The kind of the question the task waits on, else null."
    )


class ModuleRow(BaseModel):
    id: str
    wave: int
    tier: Tier
    depends_on: list[str]
    status: str
    attempts: int
    provider: str | None
    model: str | None
    started_at: str | None
    finished_at: str | None
    cost_usd: float


class TransitionRow(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from")
    to: str
    actor: str
    reason: str
    at: str


class TaskDetail(BaseModel):
    """``GET /tasks/{task_id}`` (``agentfirm tasks show --json``)."""

    task_id: str
    request: str
    status: str
    persona: str | None
    repo_path: str | None
    deliverable_path: str | None
    created_at: str
    updated_at: str
    budget_usd: float
    cost_usd: float
    policy: TaskPolicy = Field(
        default_factory=TaskPolicy,
        description="How the task is served, whoever drives it (offline, latency, runner, "
        "proposed budget, personas directory, --yes).",
    )
    calls_in_flight: int = Field(
        default=0, description="Calls sent (or about to be) and not yet booked."
    )
    modules: list[ModuleRow]
    transitions: list[TransitionRow]


class CallRow(BaseModel):
    call_id: str
    module_id: str | None
    tier: str
    provider: str
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    cost_usd: float
    latency_ms: int
    outcome: str
    upper_bound: bool = Field(
        default=False,
        description="Booked at its reservation: abandoned after it was sent, the provider billed "
        "at most this.",
    )
    simulated: bool
    at: str


class Costs(BaseModel):
    """``GET /tasks/{task_id}/costs`` (``agentfirm costs --json``)."""

    total_usd: float
    intake_usd: float = Field(
        default=0.0, description="Of the total: classification, clarification and planning."
    )
    build_usd: float = Field(default=0.0, description="Of the total: everything after intake.")
    upper_bound_usd: float = Field(
        default=0.0,
        description="Of the total: calls abandoned after they were sent, booked at their "
        "reservations (the provider billed at most this).",
    )
    simulated: bool
    by_module: dict[str, float]
    by_tier: dict[str, float]
    by_provider: dict[str, float]
    calls_total: int = Field(default=0, description="Calls on the ledger, all of them.")
    calls: list[CallRow] = Field(description="One page of the calls, oldest first.")
    next_after_seq: int | None = Field(
        default=None, description="Pass as after_seq for the next page; null: no more."
    )


class ArtifactRow(BaseModel):
    module_id: str
    kind: str
    version: int
    created_at: str
    size: int = Field(description="Bytes of its Markdown.")


class ArtifactOutput(ArtifactRow):
    task_id: str
    markdown: str


class Transcript(BaseModel):
    task_id: str
    module: str | None = Field(description="The module asked for; null: every module.")
    entries: list[dict[str, Any]] = Field(
        description="In order: `kind` model (a turn: what was sent, what came back, its cost), "
        "lost (a turn asked and not answered, and why) or tool (a call: arguments, result; "
        "`interrupted` when a crash cut it off)."
    )


class PersonaRow(BaseModel):
    id: str
    name: str
    modules: int
    keywords: list[str]


class Providers(BaseModel):
    offline: bool
    providers: list[dict[str, Any]]
    chains: dict[str, list[str]]
    problems: list[str]


__all__ = [
    "MAX_ATTACHMENTS",
    "MAX_SEQ",
    "SUBMITTER",
    "Approval",
    "ApprovalDecisionBody",
    "ArtifactOutput",
    "ArtifactRow",
    "CancelBody",
    "Costs",
    "ErrorBody",
    "Event",
    "FilePath",
    "Health",
    "Name",
    "PersonaRow",
    "Providers",
    "RejectBody",
    "ResumeBody",
    "Resumed",
    "TaskCreated",
    "TaskDetail",
    "TaskRow",
    "TaskStatusBody",
    "TaskSubmission",
    "Text",
    "Transcript",
    "fit_submitter",
]
