"""An answer to a task's question (an approval row), as every front end gives it: the terminal
following a daemon task, the TUI, Slack, the daemon's API, ``approve``/``reject``/``revise``. One
type from the front end to the approval book (``master.approval_book.ApprovalBook.decide``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal


@dataclass(frozen=True)
class Decision:
    """A human's answer to an approval (see ``StoreDecider.decide``)."""

    decision: str
    """``approved``, ``rejected``, ``aborted``; ``revise`` (review); ``retry``, ``skip``
    (failure)."""
    notes: str = ""
    budget_usd: Decimal | float | str | None = None
    modules: tuple[str, ...] = ()
    answers: Mapping[str, str] | None = None

    def redacted(self, redact: Callable[[str], str]) -> Decision:
        """This decision with the words a human typed (notes, answers) passed through
        ``redact``: a key pasted into them is stored nowhere (issue 21)."""
        answers = None
        if self.answers is not None:
            answers = {key: redact(value) for key, value in self.answers.items()}
        return replace(self, notes=redact(self.notes), answers=answers)
