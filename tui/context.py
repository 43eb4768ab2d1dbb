"""What every screen needs, built once by the app and passed in: the data source, who acts, the
clock, and the defaults shown in forms. Tests and the bench build one with a fake source and a
fixed clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .source import Source


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Context:
    source: Source
    actor: str = "tui:unknown"
    """Who decides, on the transition log (``tui:<user>``)."""
    clock: Callable[[], datetime] = field(default=_now)
    animate: bool = True
    """Spin running cards and blink the cursor. Off for snapshots, so every frame is the same."""
    refresh_s: float = 2.0
    """How often the task list is re-read; 0 reads it once (snapshots)."""
    default_budget_usd: float = 5.0
    default_runner: str = "inproc"
    runners: tuple[str, ...] = ("inproc", "notebook", "colab")
    theme: str | None = None
    """A Textual theme name (``app.theme_for``); None keeps Textual's default."""
