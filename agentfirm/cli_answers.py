"""Answers to the questions of a daemon-hosted task (its approval rows), read from their payloads:
asked on the terminal (``TerminalAnswers``) or ``--yes``'s policy (``AutoAnswers``, the
``AutoDecider`` of an in-process run). ``cli_follow`` puts them to the daemon.

An answer is a decision and the extra fields of the decide call (``budget_usd``, ``notes``,
``modules``, ``answers``); ``None`` leaves the question pending for another terminal.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from rich.console import Console

Choice = tuple[str, dict[str, Any]]

AUTO_DECISIONS: dict[str, str] = {
    "plan": "approved",  # at the budget the task was submitted with
    "budget": "rejected",  # never add budget: the task stops, resumable with more (exit 3)
    "review": "approved",
    "clarify": "rejected",  # every question becomes an assumption, as when no one can ask
    "failure": "aborted",  # no one to choose retry or skip: the task ends
}
"""``--yes`` on the daemon's questions, as ``AutoDecider`` decides in-process."""


class Answerer(Protocol):
    actor: str
    """Who decides, for the approval row (``cli:alice``, ``auto:--yes``)."""
    interactive: bool
    """A human answers: a refused answer is shown and asked again (else it is an error)."""

    def answer(self, approval: dict[str, Any]) -> Choice | None: ...


class AutoAnswers:
    """``--yes``: approve the plan at the submitted budget, never add budget, approve the draft,
    take the default answers, end the task when a module fails. Shows the plan it approves when
    given a console."""

    actor = "auto:--yes"
    interactive = False

    def __init__(self, out: Console | None = None) -> None:
        self.out = out

    def answer(self, approval: dict[str, Any]) -> Choice | None:
        from agentfirm.errors import BadInput

        kind = str(approval.get("kind"))
        decision = AUTO_DECISIONS.get(kind)
        if decision is None:
            raise BadInput(
                f"task {approval.get('task_id')} asks a {kind} question --yes cannot answer",
                hint=f"answer it with agentfirm tasks watch {approval.get('task_id')}",
            )
        if kind == "plan" and self.out is not None:
            from agentfirm.cli_output import print_plan_payload

            print_plan_payload(self.out, approval.get("payload") or {})
        return decision, {}


class FirstPlanApproved:
    """``approve ID`` on a planned task: its plan question is answered already (at the budget the
    task was resumed with); every later question goes to ``then``."""

    def __init__(self, then: Answerer, *, actor: str) -> None:
        self.then = then
        self.interactive = then.interactive
        self._own = actor
        self.actor = actor
        self._done = False

    def answer(self, approval: dict[str, Any]) -> Choice | None:
        """``actor`` names who took the answer just given (read by the caller right after)."""
        if approval.get("kind") == "plan" and not self._done:
            self._done, self.actor = True, self._own
            return "approved", {}
        self.actor = self.then.actor
        return self.then.answer(approval)


def _usd(raw: str) -> str | None:
    """A positive amount as typed (``2.50``, ``$2.50``), or None."""
    try:
        value = Decimal(raw.strip().lstrip("$"))
    except InvalidOperation:
        return None
    return str(value) if value.is_finite() and value > 0 else None


class TerminalAnswers:
    """Asks on the terminal. Every prompt offers ``[l]ater``: leave the question pending and keep
    following (another terminal, the TUI or Slack may answer it)."""

    interactive = True

    def __init__(self, out: Console, *, actor: str) -> None:
        self.out = out
        self.actor = actor

    def answer(self, approval: dict[str, Any]) -> Choice | None:
        ask = {
            "plan": self._plan,
            "budget": self._budget,
            "review": self._review,
            "clarify": self._clarify,
            "failure": self._failure,
        }.get(str(approval.get("kind")))
        payload = approval.get("payload") or {}
        if ask is None:
            from rich.markup import escape

            question = escape(str(payload.get("question", "")))
            self.out.print(f"  {question} (answer it where it can be answered)")
            return None
        return ask(payload)

    def _input(self, prompt: str) -> str:
        from rich.markup import escape

        return self.out.input(escape(prompt)).strip()

    def _plan(self, payload: dict[str, Any]) -> Choice | None:
        from rich.markup import escape

        from agentfirm.cli_output import print_plan_payload

        print_plan_payload(self.out, payload)
        self.out.print(escape(str(payload.get("question", ""))))
        while True:
            answer = self._input("Approve? [y]es / [n]o / [b]udget USD / [l]ater: ").lower()
            if answer in ("", "y", "yes"):
                return "approved", {}
            if answer in ("n", "no"):
                return "rejected", {}
            if answer in ("l", "later"):
                return None
            if answer.startswith("b"):
                amount = _usd(answer[1:].strip() or self._input("budget (USD): "))
                if amount is not None:
                    return "approved", {"budget_usd": amount}
                self.out.print("  the budget must be a positive amount such as 2.50")

    def _budget(self, payload: dict[str, Any]) -> Choice | None:
        from rich.markup import escape

        self.out.print(f"\n[red]{escape(str(payload.get('question', 'Budget reached.')))}[/]")
        for module, cost in (payload.get("by_module") or {}).items():
            self.out.print(f"  {module:<28} ${float(cost):.4f}")
        suggested = payload.get("suggested_ceiling_usd")
        while True:
            answer = self._input(
                f"New ceiling USD [{suggested}] / [s]top here / [a]bort / [l]ater: "
            ).lower()
            if answer == "":
                return "approved", {}
            if answer in ("s", "stop"):
                return "rejected", {"notes": "stopped at the budget question"}
            if answer in ("a", "abort"):
                return "aborted", {}
            if answer in ("l", "later"):
                return None
            amount = _usd(answer)
            if amount is not None:
                return "approved", {"budget_usd": amount}
            self.out.print("  type an amount such as 8.00, or s, a or l")

    def _review(self, payload: dict[str, Any]) -> Choice | None:
        from rich.markdown import Markdown

        self.out.rule("Draft for review")
        self.out.print(Markdown(str(payload.get("draft_markdown", ""))))
        self.out.rule()
        while True:
            answer = self._input("[a]pprove / [r]evise / re[j]ect / [l]ater: ").lower() or "a"
            if answer in ("a", "approve"):
                return "approved", {}
            if answer in ("j", "reject"):
                return "rejected", {}
            if answer in ("l", "later"):
                return None
            if answer in ("r", "revise"):
                notes = self._input("revision notes: ")
                names = self._input("modules to re-run (blank = all): ").split(",")
                modules = [n.strip() for n in names if n.strip()]
                return "revise", {"notes": notes, "modules": modules}

    def _clarify(self, payload: dict[str, Any]) -> Choice | None:
        questions = payload.get("questions") or []
        self.out.print(
            f"\n[bold]Before planning, {len(questions)} question(s)[/] (blank: the default)"
        )
        answers: dict[str, str] = {}
        for question in questions:
            default = str(question.get("default") or "")
            shown = f" [{default}]" if default else ""
            typed = self._input(f"  {question.get('question', '')}{shown}\n  > ")
            answers[str(question.get("id"))] = typed or default
        return "approved", {"answers": answers}

    def _failure(self, payload: dict[str, Any]) -> Choice | None:
        from rich.markup import escape

        self.out.print(
            f"\n[red]Module {escape(str(payload.get('module_id')))} failed[/] after "
            f"{payload.get('attempts', '?')} attempt(s): {escape(str(payload.get('error', '')))}"
        )
        while True:
            answer = self._input("[r]etry / [s]kip / [a]bort / [l]ater: ").lower() or "r"
            if answer in ("r", "retry"):
                return "retry", {}
            if answer in ("s", "skip"):
                return "skip", {}
            if answer in ("a", "abort"):
                return "aborted", {}
            if answer in ("l", "later"):
                return None
