"""What every runner shares: the ``Runner`` protocol, its names, and the draft a finished build
leaves in the store. Where a build runs (ARCHITECTURE.md §2 ``runs/``):

- ``inproc``: in the Master Agent's own process (the default);
- ``notebook``: the task repo's notebook, executed headless here by nbclient in a kernel of this
  very Python, so the remote path is exercised on every run;
- ``colab``: the same notebook in Colab, opened from its link; the runner waits on the bus;
- ``worker``: queued on the Redis work queue for ``agentfirm worker`` processes (any machine);
  the runner waits on the bus.

Whatever runs the build publishes on the task's bus, so the Master Agent sees every event either
way; a launched run ends with one ``runner.finished`` event, and the runner returns the draft for
review (the decision stays with the Master Agent). ``choice.runner_for`` builds one by name.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Protocol

from agentfirm.build_master.assembly import deliverable_markdown
from agentfirm.domain.calls import DELIVERABLE_ID
from agentfirm.domain.models import TaskSpec
from agentfirm.domain.policy import RunnerName
from agentfirm.errors import AgentfirmError
from agentfirm.settings import ENV_PREFIX, Settings
from agentfirm.store.base import Store

Redact = Callable[[str], str]
OnLaunch = Callable[[str], Awaitable[None] | None]


class Runner(Protocol):
    name: str

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        """Run every module of ``spec`` not yet done (those a revision set pending get
        ``notes``), stitch the draft and return its markdown. Raises as ``BuildMaster`` does:
        ``ModuleFailed``, ``BuildAborted`` (a ``TaskRejected``), ``BudgetExceeded``, or
        ``AgentfirmError`` when the run itself failed."""
        ...


def same(text: str) -> str:
    return text


async def draft_markdown(store: Store, spec: TaskSpec) -> str:
    """The latest stitched draft as markdown, rebuilt from the store without a model call (the
    same text ``BuildMaster.stitch`` returned). Raises ``AgentfirmError`` when there is none."""
    latest = await store.latest_artifacts(spec.task_id)
    draft = latest.get(DELIVERABLE_ID)
    if draft is None:
        raise AgentfirmError(
            f"task {spec.task_id} has no stitched draft", hint="run the build first"
        )
    artifacts = {m.id: latest[m.id] for m in spec.plan.modules if m.id in latest}
    simulated = any(entry.simulated for entry in await store.list_ledger(spec.task_id))
    return deliverable_markdown(spec, draft.content, artifacts, simulated=simulated)


def settings_env(settings: Settings) -> dict[str, str]:
    """``AGENTFIRM_*`` variables that reproduce ``settings`` in another process (secrets are
    not settings: they travel through the secret store)."""
    out: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json", exclude_none=True).items():
        out[ENV_PREFIX + name.upper()] = value if isinstance(value, str) else json.dumps(value)
    return out


__all__ = ["OnLaunch", "Redact", "Runner", "RunnerName", "draft_markdown", "same", "settings_env"]
