"""The ``inproc`` runner: the Build Master in the Master Agent's own process (the default)."""

from __future__ import annotations

from agentfirm.build_master.master import BuildMaster
from agentfirm.domain.models import TaskSpec


class InprocRunner:
    """The Build Master in this process."""

    name = "inproc"

    def __init__(self, build: BuildMaster) -> None:
        self.build = build

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        await self.build.execute(spec, notes=notes)
        _draft, markdown = await self.build.stitch(spec)
        return markdown
