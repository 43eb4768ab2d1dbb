"""The core's messages say how to fix things in the CLI's words (``run with --offline``); on a
screen with no command line to type them into, they are told in the TUI's own controls."""

from __future__ import annotations

import re

_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"(?:run )?with --offline(?: / AGENTFIRM_OFFLINE=1)?"),
        "tick “offline provider” in the new-task form",
    ),
    (re.compile(r"--offline"), "“offline provider” (new-task form)"),
    (re.compile(r"(?:use )?--runner (\w+)"), r"pick runner \1 in the new-task form"),
    (re.compile(r"--budget(?:[ =]\S+)?"), "the budget field"),
    (re.compile(r"\((agentfirm [a-z]+ [^)]*)\)"), r"(in a shell: \1)"),
)


def for_tui(message: str) -> str:
    """``message`` with each CLI flag replaced by the TUI control that does the same."""
    for pattern, replacement in _REWRITES:
        message = pattern.sub(replacement, message)
    return message
