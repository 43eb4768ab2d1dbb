"""Approvals asked on the terminal: the CLI's ``Decider``. Prompts run in a thread of their own so
the event loop (and the sub-agents on it) keeps going while a human reads."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import threading
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from agentfirm.errors import BadInput
from agentfirm.master.decisions import BudgetDecision, FailureChoice, PlanDecision, ReviewDecision
from agentfirm.money import nano_to_float, parse_budget_nano, usd_to_nano

FAILURE_OF: dict[str, FailureChoice] = {"retry": "retry", "skip": "skip", "aborted": "abort"}
"""A failure question's answer (as ``cli.answers`` gives it) → what the Build Master does."""

if TYPE_CHECKING:
    from rich.console import Console

    from agentfirm.domain.models import Plan, Task
    from agentfirm.domain.tools import ToolConsent, ToolRequest
    from agentfirm.master.estimate import Estimate


T = TypeVar("T")


async def off_loop(ask: Callable[..., T], *args: Any) -> T:
    """``ask(*args)``, which reads the terminal, in a daemon thread. Not ``asyncio.to_thread``:
    its threads are waited for when the process ends, so a Ctrl-C at a prompt left the run
    waiting for an Enter that nobody would type."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if answered.done():  # given up on: a Ctrl-C cancelled the wait
            return
        if error is not None:
            answered.set_exception(error)
        else:
            answered.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = ask(*args)
        except BaseException as exc:  # handed to the coroutine that waits for the answer
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="agentfirm-prompt", daemon=True).start()
    return await answered


def _ask_usd(raw: str) -> int | None:
    try:
        return parse_budget_nano(raw)
    except BadInput:
        return None


def pick_persona(
    out: Console, candidates: Sequence[str], scores: Mapping[str, float] | None = None
) -> str:
    """Ask which persona fits a request no persona clearly matches: in-process (the terminal
    decider) or before submitting to the daemon, the same question."""
    from rich.markup import escape

    out.print("\nNo persona clearly matches the request. Which one fits?")
    for number, persona in enumerate(candidates, start=1):
        score = f"  (score {scores.get(persona, 0):g})" if scores is not None else ""
        out.print(f"  {number}. {persona}{score}", markup=False)
    while True:
        answer = out.input(escape("persona [1]: ")).strip() or "1"
        if answer.isdigit() and 1 <= int(answer) <= len(candidates):
            return candidates[int(answer) - 1]
        if answer in candidates:
            return answer
        out.print(f"  type a number from 1 to {len(candidates)}")


class TerminalDecider:
    def __init__(self, out: Console) -> None:
        from agentfirm.cli.answers import TerminalAnswers

        self.out = out
        self.actor = f"cli:{getpass.getuser()}"
        self._asks = TerminalAnswers(out, actor=self.actor, can_defer=False)

    async def _input(self, prompt: str) -> str:
        from rich.markup import escape

        return await off_loop(self.out.input, escape(prompt))

    async def choose_persona(
        self, request: str, candidates: Sequence[str], scores: dict[str, float]
    ) -> str:
        return await off_loop(pick_persona, self.out, candidates, scores)

    async def clarify(self, task: Task, questions: Sequence[str]) -> list[tuple[str, str]]:
        """Ask each question; a blank answer leaves it to an assumption."""
        self.out.print(f"\n[bold]Before planning, {len(questions)} question(s)[/] (blank: assume)")
        return [(q, (await self._input(f"  {q}\n  > ")).strip()) for q in questions]

    async def approve_plan(
        self,
        task: Task,
        plan: Plan,
        estimate: Estimate,
        budget_nano: int,
        *,
        tools: Sequence[ToolConsent] = (),
    ) -> PlanDecision:
        from agentfirm.cli.output import print_plan

        print_plan(self.out, plan, estimate, budget_nano, persona=task.persona or "?", tools=tools)
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
            self.out.print(f"  {module:<28} ${cost:.4f}", markup=False)
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

    async def _ask(self, kind: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Put a question to the prompts a daemon task's questions get (``cli.answers``), in a
        worker thread; in-process nobody else could answer, so there is no ``[l]ater``."""
        choice = await off_loop(self._asks.answer, {"kind": kind, "payload": payload})
        assert choice is not None  # without [l]ater every prompt ends in a choice
        return choice

    async def review_draft(self, task: Task, draft_markdown: str) -> ReviewDecision:
        decision, extra = await self._ask("review", {"draft_markdown": draft_markdown})
        if decision == "approved":
            return ReviewDecision("approve", "draft approved on the terminal")
        if decision == "rejected":
            return ReviewDecision("reject", "draft rejected on the terminal")
        notes = str(extra.get("notes", "")).strip()
        return ReviewDecision("revise", notes, tuple(extra.get("modules", ())))

    async def module_failed(
        self, task: Task, module_id: str, error: str, attempts: int
    ) -> FailureChoice:
        """Retry the module, skip it (its dependents go on without it) or abort the task."""
        payload = {"module_id": module_id, "error": error, "attempts": attempts}
        decision, _extra = await self._ask("failure", payload)
        return FAILURE_OF[decision]

    async def approve_tool(self, task_id: str, module_id: str, request: ToolRequest) -> bool:
        """Allow a tool call that may change things, or deny it (the module does without)."""
        payload = {
            "module_id": module_id,
            "tool": request.tool,
            "origin": request.origin,
            "arguments": request.arguments,
        }
        decision, _extra = await self._ask("tool", payload)
        return decision == "approved"
