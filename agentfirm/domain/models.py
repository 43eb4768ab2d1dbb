"""Domain models shared by every layer. Pydantic, because they cross boundaries (store rows, bus
events, JSON output). Money is integer nano-dollars (see ``money.py``); times are aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field

from agentfirm.domain.calls import booked_as_upper_bound
from agentfirm.domain.policy import TaskPolicy
from agentfirm.domain.status import FINAL_STATUSES as FINAL_STATUSES
from agentfirm.domain.status import ModuleStatus as ModuleStatus
from agentfirm.domain.status import TaskStatus as TaskStatus

Tier = Literal["reasoning", "execution", "utility"]
TIERS: tuple[Tier, ...] = ("reasoning", "execution", "utility")


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModuleSpec(_Model):
    """One module of a plan: a scoped brief for one sub-agent."""

    id: str
    title: str = ""
    brief: str = ""
    tier: Tier = "execution"
    depends_on: list[str] = Field(default_factory=list)
    output_type: str = "research_notes"
    tools: list[str] = Field(default_factory=list)
    """What its sub-agent may use (``web_search``, ``fetch_url``, ``mcp:NAME``…); none: one
    structured call, no loop."""
    max_turns: int | None = None
    """Model turns its agent loop may take before it must answer (None: the setting)."""


class UncoveredItem(_Model):
    """A quality checklist item that no module of the plan covers any more (its template
    modules were dropped), with the planner's reason."""

    item: str
    why: str = ""


class Plan(_Model):
    modules: list[ModuleSpec]
    waves: list[list[str]] = Field(
        default_factory=list, description="dependency levels, display only"
    )
    uncovered: list[UncoveredItem] = Field(
        default_factory=list,
        description="checklist items the plan leaves uncovered; --yes refuses such a plan",
    )


class TaskSpec(_Model):
    """The approved spec the Build Master executes (``spec.json`` in the task repo)."""

    task_id: str
    request: str
    persona: str
    persona_name: str = ""
    plan: Plan
    quality_checklist: list[str] = Field(default_factory=list)
    budget_nano: int
    assumptions: list[str] = Field(default_factory=list)


class Task(_Model):
    id: str
    request: str
    status: TaskStatus = TaskStatus.RECEIVED
    persona: str | None = None
    budget_nano: int = 0
    spec: TaskSpec | None = None
    repo_path: str | None = None
    deliverable_path: str | None = None
    policy: TaskPolicy = Field(default_factory=TaskPolicy)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Transition(_Model):
    task_id: str
    from_status: TaskStatus | None
    to_status: TaskStatus
    actor: str
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)


class ModuleRun(_Model):
    """The execution state of one module of a task."""

    task_id: str
    module_id: str
    wave: int = 0
    tier: Tier = "execution"
    depends_on: list[str] = Field(default_factory=list)
    status: ModuleStatus = ModuleStatus.PENDING
    attempts: int = 0
    provider: str | None = None
    model: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cost_nano: int = 0


class Artifact(_Model):
    """A module's structured output (or the stitched deliverable, ``module_id='_deliverable'``)."""

    task_id: str
    module_id: str
    version: int = 1
    output_type: str
    content: dict[str, Any]
    created_at: datetime = Field(default_factory=utcnow)


CallOutcome = Literal["ok", "error", "budget_refused", "cancelled"]
"""``cancelled``: the caller or the router's deadline gave up on the attempt. Sent already, it is
booked at its reservation (the most the provider can bill for it: an upper bound, shown as
"≤ $x"); cancelled before it was sent, it costs nothing."""


class LedgerEntry(_Model):
    """One row per LLM call attempt, success or not."""

    call_id: str
    task_id: str
    module_id: str | None = None
    tier: Tier
    provider: str
    model: str
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    cost_nano: int = 0
    latency_ms: int = 0
    outcome: CallOutcome = "ok"
    simulated: bool = False
    error: str | None = None
    at: datetime = Field(default_factory=utcnow)

    @property
    def upper_bound(self) -> bool:
        """The cost is the most the provider can bill for this attempt, not what it reported:
        a request abandoned after it was sent, booked at its reservation, with no usage behind
        it. Once the provider's own record of the call is found (``Store.rebook``) the row
        carries that usage and cost and is exact."""
        reported = self.input_tokens + self.cached_input_tokens + self.output_tokens
        return booked_as_upper_bound(self.outcome, self.cost_nano, reported)


class CallRow(Protocol):
    """What a reservation keeps of its call's ledger row (``Store.reserve(for_call=…)``), to book
    it should its holder die mid-call. A ``LedgerEntry`` is one; the router passes a
    ``ReservedRow``."""

    @property
    def module_id(self) -> str | None: ...
    @property
    def tier(self) -> Tier: ...
    @property
    def provider(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def simulated(self) -> bool: ...


class ReservedRow(NamedTuple):
    """A ``CallRow`` and nothing more. The router makes one per attempt, before its request
    leaves: a ``LedgerEntry`` (validated, and stamped with the time) took some 4 us to build
    there, three times as much amid a busy call, for the five values a reservation keeps (a
    frozen dataclass, 0.9 us: each field set through ``object.__setattr__``; this, 0.4 us)."""

    module_id: str | None
    tier: Tier
    provider: str
    model: str
    simulated: bool


class Budget(_Model):
    task_id: str
    ceiling_nano: int
    spent_nano: int = 0
    reserved_nano: int = 0

    @property
    def available_nano(self) -> int:
        return self.ceiling_nano - self.spent_nano - self.reserved_nano


ApprovalKind = Literal["plan", "budget", "review", "module_failed", "clarify", "failure", "tool"]
"""``clarify``: questions before planning; ``failure``: a module failed after its retries
(``module_failed`` is an older name nothing writes any more)."""
ApprovalDecision = Literal["pending", "approved", "revise", "rejected", "aborted", "retry", "skip"]
"""``revise`` answers a review; ``retry`` and ``skip`` answer a ``failure``."""


class Approval(_Model):
    id: str
    task_id: str
    kind: ApprovalKind
    decision: ApprovalDecision = "pending"
    actor: str | None = None
    notes: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None


StreamName = Literal["events", "control"]


class Event(_Model):
    """A bus event. ``seq`` is per-task (and per-stream) monotonic, assigned by the bus on publish;
    consumers dedupe by ``(task_id, stream, seq)``."""

    id: str
    task_id: str
    stream: StreamName = "events"
    seq: int
    type: str
    module_id: str | None = None
    ts: datetime = Field(default_factory=utcnow)
    payload: dict[str, Any] = Field(default_factory=dict)
