"""A task's progress as one Slack message: the state folded from the daemon's events (status,
modules by wave, spend against the ceiling, what it waits for) and its rendering; plus the final
summary with the cost table and where the deliverable is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfirm.domain.status import FINAL_STATUSES
from agentfirm.slack.prompts import Message, escape, spend_table, transcript_command, usd

_MARKS = {
    "pending": "⚪",
    "running": "⏳",
    "retrying": "🔁",
    "done": "✅",
    "failed": "❌",
    "skipped": "⏭️",
}
_WAITING = {
    "clarify": "waiting for answers to its questions",
    "plan": "waiting for plan approval",
    "budget": "waiting for more budget",
    "review": "waiting for the draft review",
    "failure": "waiting for a decision on a failed module",
    "module_failed": "waiting for a decision on a failed module",
    "tool": "waiting for consent to run a tool",
}
MAX_MODULE_LINES = 40


@dataclass
class Progress:
    """Folded from events by ``apply``; ``render`` is the message text."""

    task_id: str
    persona: str | None = None
    status: str = "received"
    budget_usd: float | None = None
    spent_usd: float = 0.0
    waves: list[list[str]] = field(default_factory=list)
    modules: dict[str, str] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)
    waiting: str | None = None
    events: int = 0
    last: str = ""
    launch_url: str | None = None
    """Where to run the build by hand (Colab), while it waits for that run."""
    launch_secrets: list[str] = field(default_factory=list)

    def seed(self, detail: Mapping[str, Any]) -> None:
        """From ``GET /tasks/ID`` (status, persona, budget, spend, module rows)."""
        self.persona = detail.get("persona") or self.persona
        self.status = str(detail.get("status") or self.status)
        self.budget_usd = _number(detail.get("budget_usd")) or self.budget_usd
        self.spent_usd = _number(detail.get("cost_usd")) or self.spent_usd
        rows = [m for m in detail.get("modules") or () if isinstance(m, Mapping)]
        if rows:
            levels: dict[int, list[str]] = {}
            for row in rows:
                levels.setdefault(int(row.get("wave") or 1), []).append(str(row["id"]))
                self.modules[str(row["id"])] = str(row.get("status") or "pending")
                self.costs[str(row["id"])] = _number(row.get("cost_usd")) or 0.0
            self.waves = [levels[n] for n in sorted(levels)]

    def plan(self, payload: Mapping[str, Any]) -> None:
        """From a plan approval's payload: modules by wave and the proposed budget."""
        waves = payload.get("waves") or []
        if waves and not self.waves:
            self.waves = [[str(m) for m in level] for level in waves]
            for level in self.waves:
                for module in level:
                    self.modules.setdefault(module, "pending")
        self.budget_usd = _number(payload.get("budget_usd")) or self.budget_usd

    def apply(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type") or "")
        payload: Mapping[str, Any] = event.get("payload") or {}
        module = event.get("module_id") or payload.get("module_id")
        self.events += 1
        self.last = kind
        if kind == "task.transition":
            self.status = str(payload.get("to") or self.status)
            if not self.status.startswith("awaiting"):
                self.waiting = None
        elif kind == "approval.requested":
            self.waiting = _WAITING.get(str(payload.get("kind")), "waiting for an answer")
        elif kind == "approval.decided":
            self.waiting = None
            if payload.get("budget_usd") is not None:
                self.budget_usd = _number(payload["budget_usd"])
        elif kind == "build.started" and not self.waves:
            self.waves = [[str(m) for m in level] for level in payload.get("waves") or []]
        elif kind == "budget.set" or kind == "budget.adjusted":
            self.budget_usd = _number(payload.get("ceiling_usd")) or self.budget_usd
        elif kind == "runner.launched" and payload.get("url"):
            self.launch_url = str(payload["url"])
            self.launch_secrets = [str(s) for s in payload.get("secrets") or ()]
        elif kind == "runner.finished":
            self.launch_url = None
        elif kind == "cost.updated":
            self.spent_usd = _number(payload.get("spent_usd")) or self.spent_usd
        elif module and kind.startswith("module."):
            state = kind.removeprefix("module.")
            self.modules[str(module)] = {"started": "running", "completed": "done"}.get(
                state, state
            )
            if state == "completed":
                self.costs[str(module)] = _number(payload.get("cost_usd")) or 0.0

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def render(self) -> Message:
        head = f"*Task* `{self.task_id}`"
        if self.persona:
            head += f" · `{escape(self.persona)}`"
        head += f" · *{self.status.replace('_', ' ')}*"
        lines = [head]
        listed = 0
        for n, level in enumerate(self.waves, start=1):
            if listed >= MAX_MODULE_LINES:
                lines.append(f"… and {len(self.waves) - n + 1} more waves")
                break
            cells = []
            for module in level:
                state = self.modules.get(module, "pending")
                cost = f" {usd(self.costs[module])}" if self.costs.get(module) else ""
                cells.append(f"{_MARKS.get(state, '·')} `{escape(module)}`{cost}")
            listed += len(level)
            lines.append(f"*Wave {n}:* " + " · ".join(cells))
        done = sum(1 for state in self.modules.values() if state == "done")
        ceiling = f" of {usd(self.budget_usd)}" if self.budget_usd else ""
        tally = f" · {done}/{len(self.modules)} modules done" if self.modules else ""
        lines.append(f"Spent {usd(self.spent_usd)}{ceiling}{tally}")
        if self.waiting and not self.final:
            lines.append(f"_{self.waiting}_")
        if self.launch_url and not self.final:
            lines.append(f"<{self.launch_url}|Open the notebook in Colab> and run all cells")
            if self.launch_secrets:
                names = ", ".join(f"`{escape(s)}`" for s in self.launch_secrets)
                lines.append(f"Set these in Colab's secrets (the key icon) first: {names}")
        text = "\n".join(lines)
        return Message(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _where(path: str | None) -> str:
    if not path:
        return "—"
    if path.startswith(("http://", "https://")):
        return f"<{path}|{escape(path)}>"
    return f"`{escape(path)}`"


def final_summary(
    detail: Mapping[str, Any],
    costs: Mapping[str, Any],
    completion: Mapping[str, Any] | None = None,
) -> Message:
    """The closing message: status, deliverable and repo, quality, and the cost table.
    ``detail``: ``GET /tasks/ID``; ``costs``: ``GET /tasks/ID/costs``; ``completion``: the
    ``task.completed`` payload when it was seen (commit and quality)."""
    status = str(detail.get("status") or "?")
    task_id = str(detail.get("task_id") or "?")
    mark = "✅" if status == "completed" else "⛔"
    lines = [f"{mark} *Task {status}* · `{task_id}`"]
    transitions: Sequence[Mapping[str, Any]] = detail.get("transitions") or ()
    if status != "completed" and transitions:
        last = transitions[-1]
        lines.append(f"{escape(str(last.get('reason') or ''))} ({escape(str(last.get('actor')))})")
    if detail.get("deliverable_path"):
        lines.append(f"Deliverable: {_where(detail.get('deliverable_path'))}")
    if detail.get("repo_path"):
        commit = str((completion or {}).get("commit") or "")[:12]
        lines.append(
            f"Task repo: {_where(detail.get('repo_path'))}" + (f" @ `{commit}`" if commit else "")
        )
    lines.append(f"Model turns and tool calls: {transcript_command(task_id)}")
    quality = (completion or {}).get("quality") or {}
    if quality:
        lines.append(f"Quality: {quality.get('passed')} passed, {quality.get('failed')} failed")
    total = f"Total cost {usd(costs.get('total_usd'))}"
    if costs.get("simulated"):
        total += " _(simulated: offline provider, list-price estimates)_"
    lines.append(total)
    tables = [
        spend_table(costs.get("by_module") or {}, "By module"),
        spend_table(costs.get("by_tier") or {}, "By tier"),
        spend_table(costs.get("by_provider") or {}, "By provider"),
    ]
    text = "\n".join(lines)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}]
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": t[:2900]}} for t in tables if t
    ]
    return Message(f"Task {task_id} {status}: total cost {usd(costs.get('total_usd'))}", blocks)
