"""What every client of the daemon's API shares — the sync CLI client, the TUI's and Slack's async
ones: the base URL, what a front end asks (a decision, a submission), and the error a failed
exchange or a refused request becomes. Light on
purpose (no httpx, FastAPI or settings at import time) so a front end can import it before its
first frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from agentfirm.domain.decision import Decision as Decision
from agentfirm.errors import AgentfirmError, BadInput, ConfigError, NotFound

BASE_URL = "http://agentfirm"
"""What every request's URL starts with: the Unix socket is the address, the host is a formality."""


class DaemonError(AgentfirmError):
    """The daemon could not be started, reached or stopped, or it failed (5xx)."""


def unreachable(socket: Path | str, err: Exception) -> DaemonError:
    """No daemon answered at ``socket``."""
    return DaemonError(
        f"no agentfirm daemon answers at {socket} ({type(err).__name__})",
        hint="start it with `agentfirm daemon start`",
    )


class Answer(Protocol):
    """What ``raise_for`` reads of an answer: httpx's ``Response``, or the sync client's."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def raise_for(response: Answer) -> None:
    """Turn an error answer into the core's error carrying the daemon's one-line message:
    ``NotFound`` (404), ``ConfigError`` (a 4xx listing ``problems``), ``BadInput`` (other 4xx),
    ``DaemonError`` (5xx)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = str(body.get("error") or response.text)
        problems = body.get("problems")
    except (ValueError, AttributeError):
        message, problems = response.text or response.reason_phrase, None
    if isinstance(problems, list) and problems and response.status_code < 500:
        raise ConfigError([str(problem) for problem in problems])  # the in-process words
    if response.status_code == 404:
        raise NotFound(message)
    if response.status_code < 500:
        raise BadInput(message)
    raise DaemonError(f"the daemon failed: {message}")


_PLACES = {"body": "field", "query": "query parameter", "path": "path segment"}


def _place(loc: Sequence[Any]) -> tuple[str, str]:
    """``("body", "answers", "q1")`` → ``("answers.q1", "field")``."""
    parts = [str(part) for part in loc]
    kind = _PLACES.get(parts[0], "") if parts else ""
    name = ".".join(parts[1:] if kind else parts)
    return (name, kind or "field") if name else ("the request body", "")


def _wrong(error: Mapping[str, Any]) -> str:
    """What is wrong with one value, in words a person uses, with how to fix it."""
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "missing":
        return "is missing: add it"
    if kind == "extra_forbidden":
        return "is not one this endpoint takes: drop it (see GET /openapi.json)"
    if kind in ("string_too_long", "too_long"):
        return f"is too long: at most {ctx.get('max_length')}"
    if kind in ("string_too_short", "too_short"):
        return f"is too short: at least {ctx.get('min_length')}"
    bounds = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le"}
    if kind in bounds or kind == "less_than":
        word = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
        key = bounds.get(kind, "lt")
        return f"must be {word[key]} {ctx.get(key)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}"
    if kind == "json_invalid":
        return "is not valid JSON: send a JSON object"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "must be a JSON object"
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ").replace("Input should be", "must be")
    return message[:1].lower() + message[1:]


def validation_message(errors: Sequence[Any]) -> str:
    """One line for a refused request: for each value (three at most) where it is, what is
    wrong with it and how to fix it — ``query parameter limit must be at least 1`` — never a
    parser's wording or a location path."""
    parts = []
    for error in errors[:3]:
        name, kind = _place(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            name, kind = "the request body", ""
        parts.append(f"{kind} {name} {_wrong(error)}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return " ".join(("; ".join(parts) + more).split()) or "invalid request"


@dataclass(frozen=True)
class Submission:
    """A new task as a front end asks for it (``POST /tasks``)."""

    request: str
    persona: str | None = None
    budget_usd: Decimal | float | str | None = None
    offline: bool = False
    attachments: tuple[str, ...] = ()
    runner: str | None = None
    actor: str | None = None
    """Who submits (``tui:ann``); sent only when given."""
    offline_latency_ms: str | None = None
    personas_dir: str | None = None
    yes: bool = False
    allowed_tools: tuple[str, ...] = ()
    """The rest of the task's policy (``domain/policy.py``); sent only when given."""
