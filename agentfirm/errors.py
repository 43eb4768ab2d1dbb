"""The error hierarchy. Each error carries what a user needs to fix it; the CLI maps classes to exit
codes in one place (``exit_code``)."""

from __future__ import annotations

from decimal import Decimal

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BUDGET = 3
EXIT_REJECTED = 4


class AgentfirmError(Exception):
    """Base class. ``str(err)`` is the one-line message shown to the user."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class BadInput(AgentfirmError):
    """Bad user input: a request, a flag, a file. Exit code 2."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(BadInput):
    """One or more configuration problems, all reported at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        head = f"{count} configuration problem{'s' if count != 1 else ''}"
        super().__init__(head + ":\n  - " + "\n  - ".join(problems))


class PersonaError(BadInput):
    """A persona file is invalid. ``problems`` are ``file:line: what (how to fix)`` strings."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class NotFound(BadInput):
    """A named thing (task, persona, secret) does not exist."""


class SecretStoreError(AgentfirmError):
    """The secret store cannot do what was asked (e.g. no keyring backend)."""

    exit_code = EXIT_BAD_INPUT


class ProviderError(AgentfirmError):
    """An LLM provider failed in a way the router could not route around."""


class BudgetExceeded(AgentfirmError):
    """A call's worst-case cost does not fit under the task's ceiling. Nothing was spent on it."""

    exit_code = EXIT_BUDGET

    def __init__(
        self, *, task_id: str, needed_usd: Decimal, spent_usd: Decimal, ceiling_usd: Decimal
    ) -> None:
        self.task_id = task_id
        self.needed_usd = needed_usd
        self.spent_usd = spent_usd
        self.ceiling_usd = ceiling_usd
        super().__init__(
            f"budget exhausted for task {task_id}: spent ${spent_usd:.4f} of ${ceiling_usd:.4f}, "
            f"next call needs up to ${needed_usd:.4f}",
            hint="raise the budget with --budget USD",
        )


class TaskRejected(AgentfirmError):
    """A human rejected or aborted the task. Exit code 4."""

    exit_code = EXIT_REJECTED


class InvalidTransition(AgentfirmError):
    """A lifecycle transition that the state machine does not allow (a bug, not user input)."""
