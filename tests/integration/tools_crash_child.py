"""The process the crash test kills: one build of a one-module task whose module reads a price
and writes a note through an MCP server over streamable HTTP, against the OpenAI fake of the
parent test.

The test forks it from a ``forkserver`` that imported this module once (``run``), so a child
starts in a fraction of a second. ``die_after`` names a journal event after which the child
SIGKILLs itself (the event is on disk, nothing after it happened): ``[type, turn, call_id,
repair]`` (``repair``: a mark of the turn's repair ask or of its first), ``None`` matching
anything. See ``test_tools_crash.py``."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

# What a run imports only when it needs it, imported here instead: the forkserver holds them, so
# no child pays for them (they take most of a second).
import anyio._backends._asyncio  # noqa: F401
import genai_prices.data  # noqa: F401
import httpcore2  # noqa: F401
import jsonschema  # noqa: F401
import mcp.client.streamable_http  # noqa: F401
import openai.resources.chat  # noqa: F401
import truststore  # noqa: F401

from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import Event, StreamName, TaskSpec
from agentfirm.master.decisions import AutoDecider
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.tools.catalog import ToolCatalog
from agentfirm.tools.mcp_config import HttpServer
from tests.fakes.routing import router_for


class DyingBus(SQLiteLogBus):
    """The event log, SIGKILLing this process right after it wrote the event ``die_after``
    names."""

    def __init__(self, path: Path, die_after: list[Any] | None) -> None:
        super().__init__(path)
        self.die_after = die_after

    async def publish(
        self,
        task_id: str,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        module_id: str | None = None,
        stream: StreamName = "events",
    ) -> Event:
        event = await super().publish(task_id, type, payload, module_id=module_id, stream=stream)
        if self.die_after is not None:
            kind, turn, call_id, repair = self.die_after
            got = payload or {}
            if (
                type == kind
                and turn in (None, got.get("turn"))
                and call_id in (None, got.get("call_id"))
                and repair in (None, got.get("repair", False))
            ):
                os.kill(os.getpid(), signal.SIGKILL)
        return event


async def main(config: dict[str, Any]) -> None:
    store = SQLiteStore(Path(config["db"]))
    bus = DyingBus(Path(config["bus"]), config["die_after"])
    await store.open()
    await bus.open()
    spec = TaskSpec.model_validate_json(config["spec"])
    # What ``MasterAgent.drive`` does first on a resume: a call a dead run left in flight is
    # booked at its reservation.
    await store.release_reservations(spec.task_id)
    provider = OpenAIProvider(
        get_secret={"OPENAI_API_KEY": "sk-1"}.get,
        base_url=config["url"],
        store_calls=config["store"],
    )
    router = router_for(
        store, {"openai": provider}, ["openai:gpt-5-mini"], timeout_s=config["timeout_s"]
    )
    if config["store"]:
        # And then what it does next: those booked "≤" are booked again at what was stored.
        await router.reconcile(spec.task_id)
    build = BuildMaster(
        store=store,
        bus=bus,
        router=router,
        tools=ToolCatalog({"notes": HttpServer(url=config["mcp"])}),
        max_escalations=0,
        consent=AutoDecider(["mcp:notes/write_note"]).approve_tool,
    )
    await build.execute(spec)
    await router.aclose()
    await bus.close()
    await store.close()


def run(config: dict[str, Any]) -> None:
    """The child's entry point (``multiprocessing`` target)."""
    asyncio.run(main(config))
