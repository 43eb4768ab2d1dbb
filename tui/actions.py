"""What a screen offers right now, for the command palette and the help: every enabled action
with a description — the screen's own even on a letter the focused input would take as typing
(Textual leaves those out of ``active_bindings``), then the focused widgets' and the app's that
the footer shows."""

from __future__ import annotations

from collections.abc import Iterator

from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen

SCREEN_KEYS = frozenset(b.action for b in Screen.BINDINGS if isinstance(b, Binding))
"""Keys every Textual screen has (focus next, copy): not actions of ours."""


def screen_actions(screen: Screen[object]) -> Iterator[tuple[DOMNode, Binding]]:
    """(node to run it on, binding) for each key of each enabled action, in binding order."""
    own = [(screen, binding) for _key, binding in screen._bindings]
    shown = [
        (active.node, active.binding)
        for active in screen.active_bindings.values()
        if active.binding.show
    ]
    for node, binding in [*own, *shown]:
        if not binding.description or binding.system or binding.action in SCREEN_KEYS:
            continue
        if screen.app._check_action_state(binding.action, node) is False:
            continue
        yield node, binding
