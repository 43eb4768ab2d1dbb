"""The ``colab`` runner: the task notebook launched in Colab from its link; the runner waits on the
bus for the run's finish. Colab reaches the Master only through shared backends (the Postgres
store and the Redis bus), and reads its keys from Colab's secret store."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agentfirm.bus.base import Bus
from agentfirm.domain.models import TaskSpec
from agentfirm.errors import BadInput
from agentfirm.handoff.github import GitHubRepos
from agentfirm.handoff.notebook import SECRET_NAMES
from agentfirm.handoff.repos import RepoBackend
from agentfirm.handoff.task_repo import NOTEBOOK_PATH
from agentfirm.runs.base import OnLaunch, Redact, same
from agentfirm.runs.launched import LaunchedRunner
from agentfirm.settings import Settings
from agentfirm.store.base import Store


class ColabRunner(LaunchedRunner):
    """Launches the task notebook in Colab: pushes the run request, publishes the Colab URL
    (``runner.launched``; ``on_launch`` gets it too, to print or post it) and waits on the bus
    for the run's ``runner.finished``. Needs GitHub task repos."""

    name = "colab"

    def __init__(
        self,
        *,
        store: Store,
        bus: Bus,
        repos: RepoBackend,
        on_launch: OnLaunch | None = None,
        redact: Redact = same,
        secrets: Sequence[str] = (),
    ) -> None:
        """``secrets``: the names of the secrets the notebook needs in Colab's secret store,
        told to people with the link (``runner.launched``)."""
        super().__init__(store=store, bus=bus, repos=repos, redact=redact)
        self._on_launch = on_launch
        self._secrets = tuple(secrets)

    async def execute(self, spec: TaskSpec, *, notes: str = "") -> str:
        """See ``Runner.execute``; waits as long as the Colab run takes (cancel to stop)."""
        if not isinstance(self.repos, GitHubRepos):
            raise BadInput(
                "the colab runner needs GitHub task repos",
                hint="set AGENTFIRM_REPO_BACKEND=github and GITHUB_TOKEN, or use --runner notebook",
            )
        location, run, after = await self._prepare(spec, notes)
        url = await self.repos.launch_url(location, NOTEBOOK_PATH)
        await self._launched(spec, run, url, self._secrets)
        if self._on_launch is not None:
            maybe = self._on_launch(url)
            if maybe is not None:
                await maybe
        finished = await self._wait(spec.task_id, {run.run_id}, after)
        return await self._result(spec, finished)


def colab_secrets(settings: Settings, has_secret: Callable[[str], bool]) -> list[str]:
    """What a Colab run needs in Colab's secret store: the token that reads the task repo, the
    shared store and bus, and the provider keys this machine uses (none offline)."""
    names = ["GITHUB_TOKEN", "AGENTFIRM_DATABASE_URL", "AGENTFIRM_REDIS_URL"]
    if not settings.offline:
        names += [name for name in SECRET_NAMES if name.endswith("_API_KEY") and has_secret(name)]
    return names
