"""A task's policies: the settings of the front end that created it that shape how it is served —
offline, the simulated latency, the runner, the proposed budget, the personas directory and
``--yes``. They are part of the task, written with it before intake, so whoever drives it (this
process, a daemon, a daemon restarted after a crash, ``resume`` from another shell) serves it the
same way. ``None`` (or false) leaves a setting to whoever drives it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

RunnerName = Literal["inproc", "notebook", "colab", "worker"]


class TaskPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    offline: bool = False
    """Served by the offline provider, whatever the settings of the process that drives it."""
    offline_latency_ms: str | None = None
    """The offline provider's simulated latency (``N`` or ``MIN-MAX``)."""
    runner: RunnerName | None = None
    """Where the Build Master runs the modules."""
    budget_nano: int | None = None
    """The ceiling proposed at plan approval; ``None``: the plan's suggested budget."""
    personas_dir: str | None = None
    """The directory of the user's persona files (the shipped ones are always there)."""
    auto_approve: bool = False
    """``--yes``: every question is answered by its non-interactive policy (``AutoDecider``)."""
    allowed_tools: tuple[str, ...] = ()
    """Under ``--yes``, the tools that may change things that are let run (``--allow-tool``);
    every other such tool is denied."""

    def settings_update(self) -> dict[str, object]:
        """The settings this policy overrides, for ``Settings.model_copy(update=…)``."""
        update: dict[str, object] = {}
        if self.offline:
            update["offline"] = True
        if self.offline_latency_ms is not None:
            update["offline_latency_ms"] = self.offline_latency_ms
        return update
