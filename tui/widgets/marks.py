"""Toggles whose state shows by a mark, not by colour alone (a colour-blind user, a monochrome
terminal, a screenshot in a bug report all read it)."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Checkbox

ON = "✓"
OFF = " "


class MarkedCheckbox(Checkbox):
    """A checkbox showing ``✓`` when ticked and a blank when not."""

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = ON if self.value else OFF
        return super()._button
