"""Text for humans: money, ages, durations, bars and the colour of each state. Pure functions, so
screens, snapshots and the bench all render the same strings."""

from __future__ import annotations

from datetime import datetime

from rich.text import Text

from agentfirm.domain.status import FINAL_STATUSES as FINAL_STATUSES

WAITING_STATUSES = frozenset(
    {"awaiting_plan_approval", "awaiting_budget", "awaiting_review", "clarifying"}
)

STATUS_STYLE: dict[str, str] = {
    "completed": "green",
    "failed": "bold red",
    "aborted": "red",
    "aborting": "red",
    "rejected": "red",
    "executing": "yellow",
    "revising": "yellow",
    "assembling": "yellow",
    "handed_off": "yellow",
    "approved": "cyan",
    "awaiting_plan_approval": "bold magenta",
    "awaiting_budget": "bold magenta",
    "awaiting_review": "bold magenta",
    "clarifying": "bold magenta",
}

MODULE_ICON: dict[str, str] = {
    "pending": "·",
    "running": "▶",
    "done": "✓",
    "failed": "✗",
    "skipped": "⤼",
}
MODULE_STYLE: dict[str, str] = {
    "pending": "dim",
    "running": "bold yellow",
    "done": "green",
    "failed": "bold red",
    "skipped": "dim",
}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
TIER_SHORT = {"reasoning": "reason", "execution": "exec", "utility": "util"}


def usd(value: float | None) -> str:
    """Dollars with enough digits for a small spend to be visible: $0.0274, $3.10, $1,250."""
    if value is None:
        return "—"
    if abs(value) >= 1000:
        return f"${value:,.0f}"
    if abs(value) >= 1:
        return f"${value:.2f}"
    return f"${value:.4f}"


def status_text(status: str) -> Text:
    return Text(status.replace("_", " "), style=STATUS_STYLE.get(status, ""))


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h04m``, ``3d02h``: short and always the same width class."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def age(created: str | None, now: datetime) -> str:
    when = parse_time(created)
    return "—" if when is None else duration((now - when).total_seconds())


def elapsed(started: datetime | None, finished: datetime | None, now: datetime) -> str:
    if started is None:
        return ""
    return duration(((finished or now) - started).total_seconds())


def fraction_style(fraction: float) -> str:
    if fraction >= 0.9:
        return "red"
    if fraction >= 0.7:
        return "yellow"
    return "green"


def bar(spent: float, budget: float, width: int = 10) -> Text:
    """``█████░░░░░`` filled in proportion to spend, coloured by how close it is to the budget."""
    fraction = min(1.0, spent / budget) if budget > 0 else 0.0
    filled = round(fraction * width)
    if spent > 0 and filled == 0:
        filled = 1  # any spend at all shows
    text = Text("█" * filled, style=fraction_style(fraction))
    text.append("░" * (width - filled), style="dim")
    return text


def spend(spent: float, budget: float, width: int = 10) -> Text:
    """The bar followed by ``$spent/$budget``."""
    text = bar(spent, budget, width)
    text.append(f" {usd(spent)}/{usd(budget)}")
    return text


def clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"
