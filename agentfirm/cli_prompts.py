"""Approvals asked on the terminal: the CLI's ``Decider``. Prompts run in a worker thread so the
event loop (and the sub-agents on it) keeps going while a human reads."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from agentfirm.master.decisions import BudgetDecision, FailureChoice, PlanDecision, ReviewDecision
from agentfirm.money import nano_to_float, usd_to_nano

if TYPE_CHECKING:
    from rich.console import Console

    from agentfirm.domain import Plan, Task
    from agentfirm.master.estimate import Estimate


def _ask_usd(raw: str) -> int | None:
    try:
        value = Decimal(raw.strip().lstrip("$"))
    except InvalidOperation:
        return None
    return usd_to_nano(value) if value > 0 else None


class TerminalDecider:
    def __init__(self, out: Console) -> None:
        self.out = out
        self.actor = f"cli:{getpass.getuser()}"

    async def _input(self, prompt: str) -> str:
        from rich.markup import escape

        return await asyncio.to_thread(self.out.input, escape(prompt))

    async def choose_persona(
        self, request: str, candidates: Sequence[str], scores: dict[str, float]
    ) -> str:
        self.out.print("\nNo persona clearly matches the request. Which one fits?")
        for number, persona in enumerate(candidates, start=1):
            self.out.print(f"  {number}. {persona}  (score {scores.get(persona, 0):g})")
        while True:
            answer = (await self._input("persona [1]: ")).strip() or "1"
            if answer.isdigit() and 1 <= int(answer) <= len(candidates):
                return candidates[int(answer) - 1]
            if answer in candidates:
                return answer
            self.out.print(f"  type a number from 1 to {len(candidates)}")

    async def clarify(self, task: Task, questions: Sequence[str]) -> list[tuple[str, str]]:
        """Ask each question; a blank answer leaves it to an assumption."""
        self.out.print(f"\n[bold]Before planning, {len(questions)} question(s)[/] (blank: assume)")
        return [(q, (await self._input(f"  {q}\n  > ")).strip()) for q in questions]

    async def approve_plan(
        self, task: Task, plan: Plan, estimate: Estimate, budget_nano: int
    ) -> PlanDecision:
        from agentfirm.cli_output import print_plan

        print_plan(self.out, plan, estimate, budget_nano, persona=task.persona or "?")
        while True:
            answer = (await self._input("Approve? [y]es / [n]o / [b]udget USD: ")).strip().lower()
            if answer in ("", "y", "yes"):
                return PlanDecision(True, budget_nano, "approved on the terminal")
            if answer in ("n", "no"):
                return PlanDecision(False, budget_nano, "plan rejected on the terminal")
            if answer.startswith("b"):
                new = _ask_usd(answer[1:].strip() or await self._input("budget (USD): "))
                if new is None:
                    self.out.print("  the budget must be a positive amount such as 2.50")
                    continue
                budget_nano = new
                self.out.print(f"  budget set to ${nano_to_float(budget_nano):.2f}")

    async def budget_exceeded(self, task: Task, info: dict[str, Any]) -> BudgetDecision:
        self.out.print(
            f"\n[red]Budget reached[/]: spent ${info.get('spent_usd', 0):.4f} of "
            f"${info.get('ceiling_usd', 0):.4f}; the next call needs up to "
            f"${info.get('needed_usd', 0):.4f}."
        )
        for module, cost in (info.get("by_module") or {}).items():
            self.out.print(f"  {module:<28} ${cost:.4f}")
        while True:
            answer = (await self._input("Add budget (USD) or [a]bort: ")).strip().lower()
            if answer in ("a", "abort"):
                return BudgetDecision(None, "aborted on the terminal")
            added = _ask_usd(answer)
            if added is None:
                self.out.print("  type an amount such as 1.00, or a")
                continue
            ceiling = usd_to_nano(Decimal(str(info.get("ceiling_usd", 0)))) + added
            return BudgetDecision(ceiling, f"budget raised by ${nano_to_float(added):.2f}")

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        from rich.markdown import Markdown

        self.out.rule("Draft for review")
        self.out.print(Markdown(draft_markdown))
        self.out.rule()
        while True:
            answer = (await self._input("[a]pprove / [r]evise / re[j]ect: ")).strip().lower() or "a"
            if answer in ("a", "approve"):
                return ReviewDecision("approve", "draft approved on the terminal")
            if answer in ("j", "reject"):
                return ReviewDecision("reject", "draft rejected on the terminal")
            if answer in ("r", "revise"):
                notes = (await self._input("revision notes: ")).strip()
                names = (await self._input("modules to re-run (blank = all): ")).split(",")
                modules = tuple(n.strip() for n in names if n.strip())
                return ReviewDecision("revise", notes, modules)

    async def module_failed(
        self, task: Task, module_id: str, error: str, attempts: int
    ) -> FailureChoice:
        """Retry the module, skip it (its dependents go on without it) or abort the task."""
        from rich.markup import escape

        self.out.print(
            f"\n[red]Module {escape(module_id)} failed[/] after {attempts} attempt(s): "
            f"{escape(error)}",
            highlight=False,
        )
        while True:
            answer = (await self._input("[r]etry / [s]kip / [a]bort: ")).strip().lower() or "r"
            if answer in ("r", "retry"):
                return "retry"
            if answer in ("s", "skip"):
                return "skip"
            if answer in ("a", "abort"):
                return "abort"
            self.out.print("  type r, s or a")
