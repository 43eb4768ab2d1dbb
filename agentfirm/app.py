"""The application context: built once from settings, it wires store, bus, router, personas and
repos, so nothing else constructs collaborators (and tests can build one on a temp home)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType

import structlog

from agentfirm.build.master import BuildMaster
from agentfirm.bus.base import Bus
from agentfirm.errors import ConfigError
from agentfirm.handoff.repos import LocalGitRepos, RepoBackend
from agentfirm.master.agent import MasterAgent, Observer
from agentfirm.master.decisions import Decider
from agentfirm.paths import Paths
from agentfirm.personas import PersonaLibrary
from agentfirm.router.router import Router
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import Settings
from agentfirm.store.base import Store

log = structlog.get_logger(__name__)

# Which secret makes which provider available (first found wins).
PROVIDER_KEYS: Mapping[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "openai": ("OPENAI_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}


def available_providers(settings: Settings, secrets: SecretStore) -> set[str]:
    """Providers that can serve calls: those with a key, an OpenAI-compatible server when its base
    URL is set, and ``offline`` always."""
    available = {"offline"}
    for provider, names in PROVIDER_KEYS.items():
        if any(secrets.get(name) for name in names):
            available.add(provider)
    if settings.openai_compat_base_url:
        available.add("openai_compat")
    return available


@dataclass
class App:
    settings: Settings
    paths: Paths
    redactor: Redactor
    secrets: SecretStore
    store: Store
    bus: Bus
    router: Router
    personas: PersonaLibrary
    repos: RepoBackend

    @classmethod
    async def open(cls, settings: Settings, *, redactor: Redactor, secrets: SecretStore) -> App:
        """Open every backend the settings select. Raises ``ConfigError`` for a backend this
        build cannot serve, before anything is written."""
        from agentfirm.bus.sqlite_log import SQLiteLogBus
        from agentfirm.router import build_router
        from agentfirm.store.sqlite import SQLiteStore

        paths = settings.paths
        problems = []
        if settings.database_url and not settings.database_url.startswith("sqlite:///"):
            problems.append(
                "database_url: only sqlite:///PATH is served by this build — unset "
                "AGENTFIRM_DATABASE_URL to use the embedded store"
            )
        if settings.redis_url:
            problems.append(
                "redis_url: the Redis bus is not in this build — unset AGENTFIRM_REDIS_URL to use "
                "the embedded SQLite bus"
            )
        if problems:
            raise ConfigError(problems)
        paths.ensure()
        db_path = (
            paths.db_path
            if not settings.database_url
            else paths.db_path.__class__(settings.database_url.removeprefix("sqlite:///"))
        )
        personas = PersonaLibrary.load([paths.config_dir / "personas"])
        store = SQLiteStore(db_path)
        await store.open()
        bus = SQLiteLogBus(paths.bus_path)
        try:
            await bus.open()
            router = build_router(
                settings,
                store,
                available=available_providers(settings, secrets),
                redact=redactor.redact,
            )
        except BaseException:
            await bus.close()
            await store.close()
            raise
        return cls(
            settings=settings,
            paths=paths,
            redactor=redactor,
            secrets=secrets,
            store=store,
            bus=bus,
            router=router,
            personas=personas,
            repos=LocalGitRepos(paths.repos_dir),
        )

    def master(self, decider: Decider, observer: Observer | None = None) -> MasterAgent:
        build = BuildMaster(
            store=self.store,
            bus=self.bus,
            router=self.router,
            max_concurrency=self.settings.max_concurrency,
        )
        return MasterAgent(
            store=self.store,
            bus=self.bus,
            build=build,
            personas=self.personas,
            pricing=self.router,
            repos=self.repos,
            decider=decider,
            observer=observer,
        )

    async def close(self) -> None:
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
