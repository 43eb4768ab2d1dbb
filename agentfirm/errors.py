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
        if len(problems) == 1:  # one problem, one line
            super().__init__(f"configuration problem: {problems[0]}")
            return
        head = f"{len(problems)} configuration problems"
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


class DamagedFile(AgentfirmError):
    """A data file agentfirm keeps (a SQLite database) is damaged. Nothing was written to it;
    the message names the file and the hint says how to get going again. Exit code 2, as for a
    bad configuration: the user must act on the file — and the daemon's client says it so too."""

    exit_code = EXIT_BAD_INPUT


class DiskFull(AgentfirmError):
    """A write failed for want of space on the disk holding ``path``. Nothing is marked failed:
    the task stops where it was and ``agentfirm resume`` goes on once space is freed."""

    def __init__(self, path: object, detail: str = "", *, hint: str | None = None) -> None:
        self.path = str(path)
        self.detail = detail
        suffix = f" ({detail})" if detail else ""
        super().__init__(
            f"disk full: cannot write {self.path}{suffix}",
            hint=hint or "free space on that disk, then resume the task (agentfirm resume ID)",
        )

    def for_task(self, task_id: str) -> DiskFull:
        """The same error, its hint naming the command that goes on with ``task_id``."""
        return DiskFull(
            self.path, self.detail, hint=f"free space there, then: agentfirm resume {task_id}"
        )


_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL, without importing sqlite3 here
_ENOSPC_ERRNOS = frozenset({28, 122})  # ENOSPC, EDQUOT (Linux)


def disk_full(err: BaseException, path: object | None = None) -> DiskFull | None:
    """``err`` as a ``DiskFull`` when it says the disk is full — SQLite's "database or disk is
    full", or an ``OSError`` ENOSPC/EDQUOT (its own file name preferred to ``path``) — else
    None."""
    if isinstance(err, DiskFull):
        return err
    code = getattr(err, "sqlite_errorcode", None)
    if isinstance(code, int) and code & 0xFF == _SQLITE_FULL:
        return DiskFull(path if path is not None else "the database", str(err))
    if isinstance(err, OSError) and err.errno in _ENOSPC_ERRNOS:
        where = err.filename if err.filename is not None else path
        return DiskFull(where if where is not None else "a file", err.strerror or str(err))
    return None


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
