"""Logging: structlog JSON lines in the state dir, correlation ids from contextvars, and the
redactor as the last step before anything is rendered.

Library (stdlib ``logging``) records at WARNING and above go through the same pipeline, so the
log file has one format and one redaction point.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

if "structlog" not in sys.modules and "rich" not in sys.modules:
    # structlog imports rich, and through it pygments, to draw tracebacks on a terminal: more
    # than importing typer, on every command that logs. agentfirm draws its own plainly
    # (configure_logging), so rich is hidden while structlog loads — and there for whoever
    # imports it after.
    sys.modules["rich"] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        del sys.modules["rich"]

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from agentfirm.errors import BadInput
from agentfirm.secrets import Redactor

LEVELS = ("debug", "info", "warning", "error", "critical")
_PLAIN = (str, int, float, bool, type(None))


class _RedactProcessor:
    """Scrubs every string in the event (the message included). Values that are not plain JSON
    are turned into text first, since their ``repr`` could carry a secret into the output."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {key: self._scrub(value) for key, value in event_dict.items()}

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redactor.redact(value)
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, Mapping):
            return {self._scrub(str(k)): self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple | set | frozenset):
            return [self._scrub(item) for item in value]
        return self._redactor.redact(str(value))


class _OwnRecords(logging.Filter):
    """Lets structlog events through (already filtered at the configured level) and library
    records only at ``library_level`` and above."""

    def __init__(self, library_level: int) -> None:
        super().__init__()
        self._library_level = library_level

    def filter(self, record: logging.LogRecord) -> bool:
        from_structlog = isinstance(record.msg, dict) and hasattr(record, "_logger")
        return from_structlog or record.levelno >= self._library_level


class _AgentfirmHandler(logging.Handler):
    """Marker base so reconfiguring replaces exactly the handlers installed here."""


class _FileHandler(logging.FileHandler, _AgentfirmHandler):
    def handleError(self, record: logging.LogRecord) -> None:
        # A log file that cannot be written (a full disk) must not put logging's own traceback
        # on the user's terminal: the command reports the real error itself, and a record lost
        # from a file nobody can write to is all that is lost.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handleError(record)

    def close(self) -> None:
        # Closing flushes what a full disk refused; that, too, is no reason to fail the caller.
        with suppress(OSError):
            super().close()


class _StderrHandler(logging.StreamHandler, _AgentfirmHandler):  # type: ignore[type-arg]
    pass


def _level_number(level: str) -> int:
    if level.lower() not in LEVELS:
        raise BadInput(f"unknown log level {level!r}", hint="use one of " + ", ".join(LEVELS))
    return logging.getLevelNamesMapping()[level.upper()]


def configure_logging(
    *, log_path: Path, redactor: Redactor, debug: bool = False, level: str = "info"
) -> None:
    """Send structlog events at ``level`` and library warnings to ``log_path`` as JSON lines
    (``ts``, ``level``, ``event``, ``logger`` and any bound context), every string redacted.
    ``debug`` also renders them readably on stderr. Calling it again replaces the previous
    configuration (no duplicated output)."""
    threshold = _level_number(level)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
    ]
    redact = _RedactProcessor(redactor)

    def formatter(renderer: Processor) -> structlog.stdlib.ProcessorFormatter:
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.StackInfoRenderer(),
                structlog.processors.format_exc_info,
                redact,  # last before rendering: tracebacks and messages are scrubbed too
                renderer,
            ],
        )

    handlers: list[logging.Handler] = [_FileHandler(log_path, mode="a", encoding="utf-8")]
    handlers[0].setFormatter(formatter(structlog.processors.JSONRenderer()))
    if debug:
        console = _StderrHandler(sys.stderr)
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        console.setFormatter(formatter(renderer))
        handlers.append(console)
    own_records = _OwnRecords(max(threshold, logging.WARNING))
    root = logging.getLogger()
    _remove_handlers(root)
    for handler in handlers:
        handler.addFilter(own_records)
        root.addHandler(handler)
    # Low enough for our own events to reach the handlers; the filter holds libraries back.
    root.setLevel(min(threshold, logging.WARNING))

    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        # Module-level ``get_logger`` proxies must follow a reconfiguration.
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo ``configure_logging``: close its handlers and restore structlog's defaults."""
    _remove_handlers(logging.getLogger())
    structlog.reset_defaults()


def _remove_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if isinstance(handler, _AgentfirmHandler):
            root.removeHandler(handler)
            handler.close()


@contextmanager
def bind_ids(
    *, task_id: str | None = None, module_id: str | None = None, call_id: str | None = None
) -> Iterator[None]:
    """Bind correlation ids to every log line in this context (asyncio tasks and
    ``asyncio.to_thread`` calls started inside inherit them); the previous values are restored
    on exit. ``None`` leaves an id as it is."""
    ids = {
        key: value
        for key, value in (("task_id", task_id), ("module_id", module_id), ("call_id", call_id))
        if value is not None
    }
    with structlog.contextvars.bound_contextvars(**ids):
        yield
