"""What the task view shows, kept current from the daemon's events: pure Python, no Textual, so the
rules (dedupe by ``seq``, a fetched snapshot never overwriting a newer event) are tested alone.

Two inputs feed it. Events arrive in ``seq`` order (``apply``); duplicates — a replay after a
reconnect — are dropped. Snapshots (``load_detail``, ``load_plan``) arrive from fetches that may
have been in flight while newer events were applied, so each records the ``seq`` it was fetched
at and leaves alone anything an event changed after that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentfirm.domain.calls import RESERVED_IDS
from agentfirm.domain.notices import notice_text

from .fmt import FINAL_STATUSES, parse_time

# Internal call ids of the Build Master: they cost money but are not modules of the plan.
_NOT_MODULES = RESERVED_IDS


@dataclass
class ModuleView:
    id: str
    wave: int = 1
    """1-based dependency level."""
    title: str = ""
    tier: str = "execution"
    depends_on: list[str] = field(default_factory=list)
    status: str = "pending"
    attempts: int = 0
    provider: str | None = None
    model: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cost_usd: float = 0.0
    reserved_usd: float | None = None
    """Held for the module's calls in flight, when the daemon tells (its row or
    ``module.started``); None when it does not."""
    error: str = ""
    changed_seq: int = 0
    """The seq of the last event that changed it (snapshots older than that leave it alone)."""


@dataclass
class TaskModel:
    task_id: str
    status: str = "received"
    persona: str | None = None
    request: str = ""
    budget_usd: float = 0.0
    spent_usd: float = 0.0
    simulated: bool = False
    modules: dict[str, ModuleView] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    last_seq: int = 0
    duplicates: int = 0
    """Events dropped because their seq was already seen (a replay after reconnecting)."""
    status_seq: int = 0
    spent_seq: int = 0
    budget_seq: int = 0
    open_approvals: dict[str, str] = field(default_factory=dict)
    """approval id → kind, for questions asked and not yet decided (as the events tell)."""
    structure_seq: int = 0
    """Bumped when modules appear or move: the DAG must be rebuilt, not just repainted."""
    repo_path: str | None = None
    deliverable_path: str | None = None
    launch: dict[str, Any] | None = None
    """The last ``runner.launched`` payload: the runner, and for Colab its ``url`` and the
    ``secrets`` to set there."""
    key_refused: str = ""
    """What the last ``provider.key_refused`` event says, "" when none."""

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    # ------------------------------------------------------------------ snapshots
    def load_detail(self, detail: dict[str, Any], *, as_of_seq: int) -> None:
        """Merge ``GET /tasks/{id}`` fetched when ``last_seq`` was ``as_of_seq``."""
        self.persona = detail.get("persona") or self.persona
        self.request = str(detail.get("request") or self.request)
        self.repo_path = detail.get("repo_path") or self.repo_path
        self.deliverable_path = detail.get("deliverable_path") or self.deliverable_path
        if self.status_seq <= as_of_seq:
            self.status = str(detail.get("status") or self.status)
        if self.budget_seq <= as_of_seq:
            self.budget_usd = float(detail.get("budget_usd") or 0.0)
        if self.spent_seq <= as_of_seq:
            self.spent_usd = max(self.spent_usd, float(detail.get("cost_usd") or 0.0))
        for row in detail.get("modules") or []:
            module = self._module(str(row["id"]))
            if module.wave != int(row.get("wave") or module.wave):
                self.structure_seq += 1
            module.wave = int(row.get("wave") or module.wave)
            module.tier = str(row.get("tier") or module.tier)
            module.depends_on = list(row.get("depends_on") or module.depends_on)
            if module.changed_seq > as_of_seq:
                continue
            module.status = str(row.get("status") or module.status)
            module.attempts = int(row.get("attempts") or 0)
            module.provider = row.get("provider") or module.provider
            module.model = row.get("model") or module.model
            module.started_at = parse_time(row.get("started_at"))
            module.finished_at = parse_time(row.get("finished_at"))
            module.cost_usd = float(row.get("cost_usd") or 0.0)
            if row.get("reserved_usd") is not None:
                module.reserved_usd = float(row["reserved_usd"])

    def load_plan(self, payload: dict[str, Any]) -> None:
        """Modules, titles and waves from a plan approval's payload: the DAG before any module
        runs (the task detail has rows only once the build starts)."""
        level = {m: n for n, wave in enumerate(payload.get("waves") or [], start=1) for m in wave}
        for spec in payload.get("modules") or []:
            module = self._module(str(spec["id"]))
            module.title = str(spec.get("title") or module.title)
            module.tier = str(spec.get("tier") or module.tier)
            module.depends_on = list(spec.get("depends_on") or [])
            if module.id in level and module.wave != level[module.id]:
                module.wave = level[module.id]
                self.structure_seq += 1

    def load_costs(self, costs: dict[str, Any]) -> None:
        self.simulated = self.simulated or bool(costs.get("simulated"))

    def _module(self, module_id: str) -> ModuleView:
        module = self.modules.get(module_id)
        if module is None:
            module = self.modules[module_id] = ModuleView(module_id)
            self.structure_seq += 1
        return module

    # ------------------------------------------------------------------ events
    def apply(self, event: dict[str, Any]) -> bool:
        """Apply one event; False (and nothing changes) for a seq already seen."""
        seq = int(event["seq"])
        if seq <= self.last_seq:
            self.duplicates += 1
            return False
        self.last_seq = seq
        self.events.append(event)
        kind = str(event.get("type", ""))
        payload: dict[str, Any] = event.get("payload") or {}
        module_id = event.get("module_id")
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, seq, module_id, payload, parse_time(event.get("ts")))
        return True

    def _on_transition(self, seq: int, _m: str | None, p: dict[str, Any], _t: Any) -> None:
        self.status = str(p.get("to") or self.status)
        self.status_seq = seq

    def _on_build_started(self, seq: int, _m: str | None, p: dict[str, Any], _t: Any) -> None:
        for n, wave in enumerate(p.get("waves") or [], start=1):
            for module_id in wave:
                module = self._module(str(module_id))
                if module.wave != n:
                    module.wave = n
                    self.structure_seq += 1

    def _on_module_started(
        self, seq: int, module_id: str | None, p: dict[str, Any], ts: datetime | None
    ) -> None:
        if not module_id or module_id in _NOT_MODULES:
            return
        module = self._module(module_id)
        if "wave" in p and module.wave != int(p["wave"]) + 1:
            module.wave = int(p["wave"]) + 1
            self.structure_seq += 1
        module.tier = str(p.get("tier") or module.tier)
        # A new run of the module (first, or after its failed-module question or a revision)
        # restarts its clock; a retry within a run keeps it. ``attempt`` counts across runs.
        if module.status != "running" or module.started_at is None:
            module.started_at = ts
        module.status = "running"
        module.attempts = int(p.get("attempt") or module.attempts + 1)
        module.finished_at = None
        module.error = ""
        if p.get("reserved_usd") is not None:
            module.reserved_usd = float(p["reserved_usd"])
        module.changed_seq = seq

    def _on_module_retrying(
        self, seq: int, module_id: str | None, p: dict[str, Any], _t: Any
    ) -> None:
        if module_id in self.modules:
            self.modules[module_id].error = str(p.get("error") or "")
            self.modules[module_id].changed_seq = seq

    def _on_module_completed(
        self, seq: int, module_id: str | None, p: dict[str, Any], ts: datetime | None
    ) -> None:
        if not module_id or module_id in _NOT_MODULES:
            return
        module = self._module(module_id)
        module.status = "done"
        module.reserved_usd = None  # nothing is held for a module that is done
        module.cost_usd = float(p.get("cost_usd") or module.cost_usd)
        module.provider = p.get("provider") or module.provider
        module.model = p.get("model") or module.model
        module.attempts = int(p.get("attempts") or module.attempts)
        module.finished_at = ts
        module.changed_seq = seq
        self.simulated = self.simulated or bool(p.get("simulated"))

    def _on_module_failed(
        self, seq: int, module_id: str | None, p: dict[str, Any], ts: datetime | None
    ) -> None:
        if not module_id or module_id in _NOT_MODULES:
            return
        module = self._module(module_id)
        module.status = "failed"
        module.error = str(p.get("error") or "")
        module.finished_at = ts
        module.changed_seq = seq

    def _on_module_skipped(
        self, seq: int, module_id: str | None, p: dict[str, Any], ts: datetime | None
    ) -> None:
        if module_id and module_id in self.modules:
            self.modules[module_id].status = "skipped"
            self.modules[module_id].finished_at = ts
            self.modules[module_id].changed_seq = seq

    def _on_cost(self, seq: int, module_id: str | None, p: dict[str, Any], _t: Any) -> None:
        if "spent_usd" in p:
            self.spent_usd = float(p["spent_usd"])
            self.spent_seq = seq
        self.simulated = self.simulated or bool(p.get("simulated"))
        target = p.get("module_id") or module_id
        if target in self.modules and self.modules[target].status == "running":
            # A running module's cost so far (its row is settled when it completes).
            self.modules[target].cost_usd += float(p.get("cost_usd") or 0.0)

    def _on_asked(self, seq: int, _m: str | None, p: dict[str, Any], _t: Any) -> None:
        if p.get("approval_id"):
            self.open_approvals[str(p["approval_id"])] = str(p.get("kind") or "")

    def _on_decided(self, seq: int, _m: str | None, p: dict[str, Any], _t: Any) -> None:
        self.open_approvals.pop(str(p.get("approval_id")), None)
        if p.get("budget_usd") is not None and p.get("decision") == "approved":
            self.budget_usd = float(p["budget_usd"])
            self.budget_seq = seq

    def _on_launched(self, seq: int, _m: str | None, p: dict[str, Any], _t: Any) -> None:
        self.launch = dict(p)

    def _on_key_refused(self, seq: int, _m: str | None, p: dict[str, Any], _t: Any) -> None:
        self.key_refused = notice_text("provider.key_refused", p) or ""

    # ------------------------------------------------------------------ queries
    def waves(self) -> list[list[ModuleView]]:
        """Modules by dependency level, in a stable order within each."""
        levels: dict[int, list[ModuleView]] = {}
        for module in self.modules.values():
            levels.setdefault(module.wave, []).append(module)
        return [sorted(levels[n], key=lambda m: m.id) for n in sorted(levels)]

    def dependents(self, module_id: str) -> list[str]:
        return sorted(m.id for m in self.modules.values() if module_id in m.depends_on)

    def running(self) -> bool:
        return any(m.status == "running" for m in self.modules.values())


_HANDLERS = {
    "task.transition": TaskModel._on_transition,
    "build.started": TaskModel._on_build_started,
    "module.started": TaskModel._on_module_started,
    "module.retrying": TaskModel._on_module_retrying,
    "module.completed": TaskModel._on_module_completed,
    "module.failed": TaskModel._on_module_failed,
    "module.skipped": TaskModel._on_module_skipped,
    "cost.updated": TaskModel._on_cost,
    "approval.requested": TaskModel._on_asked,
    "approval.decided": TaskModel._on_decided,
    "runner.launched": TaskModel._on_launched,
    "provider.key_refused": TaskModel._on_key_refused,
}
