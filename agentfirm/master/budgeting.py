"""The budget prompt: when a call does not fit under the ceiling, the decider is asked whether to
raise it. Raised: the task goes back to where it was and ``budget.adjusted`` opens the Build
Master's gate. Declined: the task waits in ``awaiting_budget`` and the build is told to stop."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentfirm.bus.base import Bus
from agentfirm.domain.models import TaskStatus
from agentfirm.errors import BudgetExceeded
from agentfirm.master.decisions import Decider
from agentfirm.master.transitions import move
from agentfirm.money import nano_to_float
from agentfirm.store.base import Store

S = TaskStatus


class BudgetStop(Exception):
    """The human (or --yes) declined to add budget."""


def budget_info(err: BudgetExceeded) -> dict[str, Any]:
    return {
        "spent_usd": float(err.spent_usd),
        "ceiling_usd": float(err.ceiling_usd),
        "needed_usd": float(err.needed_usd),
    }


@dataclass
class BudgetPrompt:
    store: Store
    bus: Bus
    decider: Decider
    declined: set[str] = field(default_factory=set)
    """Tasks whose budget question was declined in this process: their abort is a stop for
    budget, not the user's abort."""

    async def answer(
        self, task_id: str, info: dict[str, Any], *, already_waiting: bool = False
    ) -> bool:
        """Ask whether to raise the ceiling; True when it was raised. Declining leaves the task
        in ``awaiting_budget`` (resumable once budget is added) and tells the Build Master to
        stop. ``already_waiting``: a resumed task, whose way back is its last transition's
        origin."""
        if already_waiting:
            previous = (await self.store.list_transitions(task_id))[-1].from_status or S.EXECUTING
        else:
            previous = (await self.store.get_task(task_id)).status
            await self._move(task_id, S.AWAITING_BUDGET, "a call did not fit under the ceiling")
        task = await self.store.get_task(task_id)
        if not info:
            budget = await self.store.get_budget(task_id)
            info = {
                "spent_usd": nano_to_float(budget.spent_nano),
                "ceiling_usd": nano_to_float(budget.ceiling_nano),
                "needed_usd": 0.0,
            }
        decision = await self.decider.budget_exceeded(task, info)
        if decision.new_ceiling_nano is None:
            self.declined.add(task_id)
            if already_waiting:
                return False
            await self.bus.publish(
                task_id, "abort", {"reason": "budget_exhausted"}, stream="control"
            )
            return False
        await self.raise_ceiling(
            task_id, decision.new_ceiling_nano, previous, decision.reason or "budget raised"
        )
        return True

    async def raise_ceiling(
        self, task_id: str, ceiling_nano: int, back_to: TaskStatus, reason: str
    ) -> None:
        """Set the new ceiling, move the task back to ``back_to`` and open the build's gate."""
        await self.store.set_budget(task_id, ceiling_nano)
        task = await self.store.get_task(task_id)
        task.budget_nano = ceiling_nano
        await self.store.save_task(task)
        await self._move(task_id, back_to, reason)
        await self.bus.publish(
            task_id,
            "budget.adjusted",
            {"ceiling_usd": nano_to_float(ceiling_nano)},
            stream="control",
        )

    async def _move(self, task_id: str, to: TaskStatus, reason: str) -> None:
        await move(self.store, self.bus, task_id, to, actor=self.decider.actor, reason=reason)
