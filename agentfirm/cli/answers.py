"""Answers to the questions of a daemon-hosted task (its approval rows), read from their payloads:
asked on the terminal (``TerminalAnswers``) or ``--yes``'s policy (``AutoAnswers``, the
``AutoDecider`` of an in-process run). ``cli_follow`` puts them to the daemon.

An answer is a decision and the extra fields of the decide call (``budget_usd``, ``notes``,
``modules``, ``answers``); ``None`` leaves the question pending for another terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from agentfirm.errors import BadInput
from agentfirm.master.decisions import AUTO_ACTOR, AUTO_DECISIONS, uncovered_refusal
from agentfirm.money import parse_budget

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from rich.console import Console

Choice = tuple[str, dict[str, Any]]


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

    actor = AUTO_ACTOR
    interactive = False

    def __init__(self, out: Console | None = None, *, allowed_tools: Sequence[str] = ()) -> None:
        self.out = out
        self.allowed_tools = frozenset(allowed_tools)

    def answer(self, approval: dict[str, Any]) -> Choice | None:
        from agentfirm.errors import BadInput

        kind = str(approval.get("kind"))
        if kind == "tool":  # denied unless --allow-tool names it
            from agentfirm.domain.tools import tool_allowed

            payload = approval.get("payload") or {}
            named = tool_allowed(self.allowed_tools, payload.get("tool"), payload.get("origin"))
            return ("approved" if named else "rejected"), {}
        decision = AUTO_DECISIONS.get(kind)
        if decision is None:
            raise BadInput(
                f"task {approval.get('task_id')} asks a {kind} question --yes cannot answer",
                hint=f"answer it with agentfirm tasks watch {approval.get('task_id')}",
            )
        if kind == "plan":
            payload = approval.get("payload") or {}
            self._show_plan(payload)
            refusal = uncovered_refusal(payload.get("uncovered") or [])
            if refusal is not None:
                return "rejected", {"notes": refusal}
        return decision, {}

    def seen_decided(self, approval: dict[str, Any]) -> None:
        """A question the task's ``--yes`` policy answered in the daemon before this terminal
        could: a plan is still shown as if answered here."""
        if approval.get("kind") == "plan":
            self._show_plan(approval.get("payload") or {})

    def _show_plan(self, payload: Mapping[str, Any]) -> None:
        from agentfirm.cli.output import console, plan_warnings, print_plan_payload

        if self.out is not None:
            print_plan_payload(self.out, payload)
        else:  # --json: stdout holds one document; the warnings still go before the run
            for warning in plan_warnings(payload):
                console(stderr=True).print(warning, soft_wrap=True)


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
    """A budget as typed (``2.50``, ``$2.50``), or None when it is not one."""
    try:
        usd = parse_budget(raw)
    except BadInput:
        return None
    return None if usd is None else str(usd)


class TerminalAnswers:
    """Asks on the terminal. Every prompt offers ``[l]ater``: leave the question pending and keep
    following (another terminal, the TUI or Slack may answer it) — unless ``can_defer`` is off:
    the in-process terminal decider (``cli.prompts``) asks its questions through this too, and
    there nobody else could answer."""

    interactive = True

    def __init__(self, out: Console, *, actor: str, can_defer: bool = True) -> None:
        self.out = out
        self.actor = actor
        self.can_defer = can_defer

    def _choices(self, options: str) -> str:
        return f"{options} / [l]ater: " if self.can_defer else f"{options}: "

    def _later(self, answer: str) -> bool:
        return self.can_defer and answer in ("l", "later")

    def answer(self, approval: dict[str, Any]) -> Choice | None:
        ask = {
            "plan": self._plan,
            "budget": self._budget,
            "review": self._review,
            "clarify": self._clarify,
            "failure": self._failure,
            "tool": self._tool,
        }.get(str(approval.get("kind")))
        payload = approval.get("payload") or {}
        if ask is None:
            from rich.markup import escape

            question = escape(str(payload.get("question", "")))
            self.out.print(f"  {question} (answer it where it can be answered)", markup=False)
            return None
        return ask(payload)

    def _input(self, prompt: str) -> str:
        from rich.markup import escape

        return self.out.input(escape(prompt)).strip()

    def _plan(self, payload: dict[str, Any]) -> Choice | None:
        from rich.markup import escape

        from agentfirm.cli.output import print_plan_payload

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
            answer = self._input(self._choices("[a]pprove / [r]evise / re[j]ect")).lower() or "a"
            if answer in ("a", "approve"):
                return "approved", {}
            if answer in ("j", "reject"):
                return "rejected", {}
            if self._later(answer):
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

    def _tool(self, payload: dict[str, Any]) -> Choice | None:
        from rich.markup import escape

        self.out.print(
            f"\n[yellow]Module {escape(str(payload.get('module_id')))} wants to run "
            f"{escape(str(payload.get('origin') or payload.get('tool')))}[/], which may change "
            f"things: {escape(str(payload.get('arguments', ''))[:300])}"
        )
        while True:
            answer = self._input(self._choices("allow it? [y]es / [n]o")).lower() or "n"
            if answer in ("y", "yes"):
                return "approved", {}
            if answer in ("n", "no"):
                return "rejected", {}
            if self._later(answer):
                return None
            self.out.print("  type y or n" + (" (or l: later)" if self.can_defer else ""))

    def _failure(self, payload: dict[str, Any]) -> Choice | None:
        from rich.markup import escape

        self.out.print(
            f"\n[red]Module {escape(str(payload.get('module_id')))} failed[/] after "
            f"{payload.get('attempts', '?')} attempt(s): {escape(str(payload.get('error', '')))}"
        )
        while True:
            answer = self._input(self._choices("[r]etry / [s]kip / [a]bort")).lower() or "r"
            if answer in ("r", "retry"):
                return "retry", {}
            if answer in ("s", "skip"):
                return "skip", {}
            if answer in ("a", "abort"):
                return "aborted", {}
            if self._later(answer):
                return None
            self.out.print("  type r, s or a" + (" (or l: later)" if self.can_defer else ""))
