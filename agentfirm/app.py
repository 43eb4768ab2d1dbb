"""The application context: built once from settings, it wires store, bus, router, personas and
repos, so nothing else constructs collaborators (and tests can build one on a temp home)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import structlog

from agentfirm.bus.base import Bus
from agentfirm.domain.calls import InFlight
from agentfirm.domain.policy import TaskPolicy
from agentfirm.errors import ConfigError
from agentfirm.handoff.repos import RepoBackend
from agentfirm.master.task_lock import TaskLocks
from agentfirm.money import usd_to_nano
from agentfirm.paths import Paths
from agentfirm.personas.library import PersonaLibrary
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings
from agentfirm.store.base import Store
from agentfirm.store.choice import store_for

if TYPE_CHECKING:
    # The Build Master, the runners, the SDK-backed router and the GitHub backend load only when
    # a command needs them, so read-only commands (`tasks list`, `costs`) start fast.
    from agentfirm.domain.policy import RunnerName
    from agentfirm.master.agent import MasterAgent, Observer
    from agentfirm.master.decisions import Decider
    from agentfirm.router.router import Router
    from agentfirm.runs.base import OnLaunch

log = structlog.get_logger(__name__)


def _settings_env(settings: Settings) -> dict[str, str]:
    from agentfirm.runs.base import settings_env

    return settings_env(settings)


def _bus_for(settings: Settings, store: Store) -> Bus:
    """Redis Streams when ``redis_url`` is set (with a disk outbox in the data dir, so events
    published while Redis is away are delivered later, in order; and the store's events to give
    a Redis that lost them back their history, seqs included), else the embedded log."""
    if settings.redis_url:
        from agentfirm.bus.redis_streams import RedisStreamsBus

        return RedisStreamsBus(
            settings.redis_url,
            outbox_path=settings.paths.data_dir / "outbox.db",
            history=store.list_events,
        )
    from agentfirm.bus.sqlite_log import SQLiteLogBus

    return SQLiteLogBus(settings.paths.bus_path)


@dataclass
class App:
    settings: Settings
    paths: Paths
    redactor: Redactor
    secrets: SecretStore
    store: Store
    bus: Bus
    personas: PersonaLibrary
    repos: RepoBackend
    locks: TaskLocks
    env: Mapping[str, str] = field(default_factory=dict)
    """The environment the settings were loaded from (a notebook's kernel gets it)."""
    in_flight: InFlight = field(default_factory=InFlight)
    """What it has under way: requests its routers (its views' included) have sent and not yet
    seen end, tool calls running, and repo writes a stop waits for."""
    _router: Router | None = None

    @property
    def router(self) -> Router:
        """The Model Router, built on first use: commands that only read (``tasks list``) work
        without any provider configured. Raises ``ConfigError`` listing every chain problem —
        a tier nobody can serve, a provider without a key or not in this build, a model without
        a list price — before a task is created."""
        if self._router is None:
            from agentfirm.config_check import available_providers, check
            from agentfirm.router import build_router

            check(self.settings, self.secrets)
            self._router = build_router(
                self.settings,
                self.store,
                available=available_providers(self.settings, self.secrets),
                redact=self.redactor.redact,
                env=self.env,
                get_secret=self.secrets.get,
                timeout_s=self.settings.provider_timeout_s,
                notify=self.bus.publish,
                in_flight=self.in_flight,
            )
        return self._router

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        redactor: Redactor,
        secrets: SecretStore,
        env: Mapping[str, str] | None = None,
    ) -> App:
        """Open every backend the settings select. Raises ``ConfigError`` for a backend this
        build cannot serve, before anything is written."""
        from agentfirm.handoff.github import repos_for

        paths = settings.paths
        paths.ensure()
        store = store_for(settings)
        personas = PersonaLibrary.load([paths.config_dir / "personas"])
        await store.open()
        bus = _bus_for(settings, store)
        try:
            await bus.open()
        except BaseException:
            await bus.close()
            await store.close()
            raise
        in_flight = InFlight()
        return cls(
            settings=settings,
            paths=paths,
            redactor=redactor,
            secrets=secrets,
            store=store,
            bus=bus,
            personas=personas,
            repos=repos_for(settings, secrets, in_flight),
            in_flight=in_flight,
            locks=TaskLocks(paths.runtime_dir / "locks"),
            env=dict(env) if env is not None else _settings_env(settings),
        )

    def master(
        self,
        decider: Decider,
        observer: Observer | None = None,
        *,
        runner: RunnerName | None = None,
        on_launch: OnLaunch | None = None,
    ) -> MasterAgent:
        """A Master Agent on this context. ``runner`` (default ``settings.runner``) says where
        the Build Master runs. Raises ``ConfigError`` (via ``router``) when the providers cannot
        serve a task, or the runner cannot run here."""
        from agentfirm.build_master.master import BuildMaster
        from agentfirm.master.abort_watch import abort_wait_s
        from agentfirm.master.agent import MasterAgent
        from agentfirm.runs.choice import runner_for, runner_problems

        name: RunnerName = runner or self.settings.runner
        problems = runner_problems(self.settings, name)
        if problems:
            raise ConfigError(problems)
        build = BuildMaster.from_settings(
            self.settings,
            store=self.store,
            bus=self.bus,
            router=self.router,
            redact=self.redactor.redact,
        )
        # Tools that may change things ask the same decider as every other question.
        approve_tool = getattr(decider, "approve_tool", None)
        if approve_tool is not None:
            build.consent = approve_tool
        return MasterAgent(
            store=self.store,
            bus=self.bus,
            build=build,
            personas=self.personas,
            pricing=self.router,
            repos=self.repos,
            decider=decider,
            locks=self.locks,
            observer=observer,
            router=self.router,
            intake_budget_nano=usd_to_nano(self.settings.intake_cap_usd),
            quality_revision=self.settings.quality_revision,
            redact=self.redactor.redact,
            notebook_requirement=self.settings.notebook_requirement,
            abort_wait_s=abort_wait_s(self.settings.provider_timeout_s),
            reconcile=self.router.reconcile,
            runner=runner_for(
                name,
                build=build,
                store=self.store,
                bus=self.bus,
                repos=self.repos,
                settings=self.settings,
                env=self.env,
                redact=self.redactor.redact,
                on_launch=on_launch,
                has_secret=lambda name: self.secrets.get(name) is not None,
            ),
        )

    def serving(self, policy: TaskPolicy) -> App:
        """This context as a task's policy shapes it: the same store, bus, locks and repos, the
        settings the policy overrides (offline, latency: then its own router), and, when the policy
        names a personas directory, the personas read again from it, so personas added since this
        context opened are known. Reads persona files: call it off the event loop."""
        view = self
        update = {
            k: v for k, v in policy.settings_update().items() if getattr(self.settings, k) != v
        }
        if update:
            settings = self.settings.model_copy(update=update)
            env = {**self.env, **_settings_env(settings)}
            view = replace(self, settings=settings, env=env, _router=None)
        if policy.personas_dir is not None:
            view = replace(view, personas=PersonaLibrary.load([Path(policy.personas_dir)]))
        return view

    async def close(self) -> None:
        self.locks.release_all()
        if self._router is not None:
            await self._router.aclose()
        await self.bus.close()
        await self.store.close()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
