"""The questions a task asks, as prompts over its view: the first pending one opens by itself
unless it was put off (``escape``; ``a`` opens it again), a decision is sent once, and a question
answered elsewhere (the CLI, Slack) closes its prompt here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.screen import Screen

from agentfirm.errors import AgentfirmError

from ..context import Context
from ..modals import ApprovalModal, modal_for
from ..source import Decision

ASKING = {
    "plan": "approve the plan",
    "budget": "the budget is reached",
    "review": "review the draft",
    "clarify": "answer a few questions",
    "failure": "a module failed",
    "module_failed": "a module failed",
    "tool": "a tool asks to run",
}


class Prompts:
    """Owned by one task view (``screen``); ``changed`` is called when a decision was sent, so
    the view fetches the task's questions again."""

    def __init__(self, screen: Screen[Any], ctx: Context, changed: Callable[[], None]) -> None:
        self.screen = screen
        self.ctx = ctx
        self.changed = changed
        self.pending: list[dict[str, Any]] = []
        self._asking: str | None = None
        self._dismissed: set[str] = set()
        self._deciding: set[str] = set()

    def banner(self) -> str:
        """What the task waits on, for the line above the tabs ("" when nothing)."""
        if not self.pending:
            return ""
        kind = str(self.pending[0].get("kind"))
        return f"❯ Waiting for you: {ASKING.get(kind, kind)} — press a to answer"

    def update(self, approvals: list[dict[str, Any]]) -> None:
        """The task's approvals as just fetched: remember the pending ones, ask the first."""
        self.pending = [a for a in approvals if a.get("decision") == "pending"]
        self.ask_next()

    def ask_next(self) -> None:
        if self._asking is not None or not self.screen.is_current:
            return
        skip = self._dismissed | self._deciding
        waiting = [a for a in self.pending if a["id"] not in skip]
        if waiting:
            self._open(waiting[0])

    def reopen(self) -> None:
        """``a``: the first pending question, even one put off."""
        if self.pending and self._asking is None:
            self._dismissed.discard(str(self.pending[0]["id"]))
            self._open(self.pending[0])

    def _open(self, approval: dict[str, Any]) -> None:
        approval_id = str(approval["id"])
        self._asking = approval_id

        def done(decision: Decision | None) -> None:
            self._asking = None
            if decision is None:
                self._dismissed.add(approval_id)
            else:
                self._deciding.add(approval_id)
                self.screen.run_worker(self._send(approval, decision), group="decide")

        self.screen.app.push_screen(modal_for(approval), done)

    async def _send(self, approval: dict[str, Any], decision: Decision) -> None:
        approval_id = str(approval["id"])
        try:
            await self.ctx.source.decide(approval_id, decision, actor=self.ctx.actor)
        except AgentfirmError as err:
            self.screen.notify(
                str(err), title="Not decided", severity="error", timeout=10, markup=False
            )
        else:
            self.screen.notify(f"{approval.get('kind')}: {decision.decision}", timeout=3)
            self.pending = [a for a in self.pending if a["id"] != approval_id]
        finally:
            self._deciding.discard(approval_id)
        self.changed()

    def decided_elsewhere(self, events: list[dict[str, Any]]) -> None:
        """Close the open prompt when an event says its question was answered."""
        for event in events:
            payload = event.get("payload") or {}
            asking = self._asking
            if event.get("type") != "approval.decided" or payload.get("approval_id") != asking:
                continue
            top = self.screen.app.screen
            if asking is not None and isinstance(top, ApprovalModal) and top.approval_id == asking:
                self.screen.notify(
                    f"{payload.get('kind')} answered by {payload.get('actor')}", markup=False
                )
                top.dismiss(None)
