"""Providers whose key was refused (401/403): skipped by the router for the rest of its life, and
said once per task (``provider.key_refused``): the key to fix, and what took over."""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from agentfirm.router.base import Notify

log = structlog.get_logger(__name__)


class RefusedKeys:
    """The providers whose key was refused, with the key's name, and who was told of which."""

    def __init__(self) -> None:
        self._keys: dict[str, str] = {}
        self._told: set[tuple[str, str]] = set()  # (task, provider)

    def __contains__(self, provider: object) -> bool:
        return provider in self._keys

    def refuse(self, provider: str, key: str) -> None:
        self._keys[provider] = key

    async def tell(
        self,
        notify: Notify,
        task_id: str,
        module_id: str | None,
        refused: Sequence[str],
        took_over: str | None,
    ) -> None:
        """Publish ``provider.key_refused`` for each provider of ``refused``, once per task: the
        key to fix and what took over (None: nothing did). A lost notice is logged, never
        raised: it must not fail the call."""
        for provider in dict.fromkeys(refused):
            if (task_id, provider) in self._told:
                continue
            self._told.add((task_id, provider))
            payload = {"provider": provider, "key": self._keys[provider], "took_over": took_over}
            try:
                await notify(task_id, "provider.key_refused", payload, module_id=module_id)
            except Exception as exc:
                log.warning("router.notify_failed", event="provider.key_refused", error=str(exc))
