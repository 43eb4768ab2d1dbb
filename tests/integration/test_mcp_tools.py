"""A module's agent loop against real MCP servers: ``mcp-server-fetch`` and ``mcp-server-time``
from PyPI over stdio, and a streamable-HTTP server the test starts (the SDK's own MCPServer),
with the real OpenAI SDK talking to its loopback fake as the model."""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agentfirm.build_master.journal import TOOL, TURN
from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleSpec, Plan, TaskSpec
from agentfirm.errors import ConfigError
from agentfirm.master.decisions import AutoDecider
from agentfirm.router.providers.openai import OpenAIProvider
from agentfirm.router.router import Router
from agentfirm.store.sqlite import SQLiteStore
from agentfirm.tools.catalog import ToolCatalog
from agentfirm.tools.mcp_config import HttpServer, StdioServer
from tests.fakes.http_fake import Reply, ScriptedHTTPServer, running
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.routing import funded_task, router_for

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
PAGE_TEXT = "Kaltwerk lists its KW-9 heat pump at EUR 1,180 per unit."
PAGE = f"""<html><head><title>Price list</title><script>var x = 1;</script></head>
<body><nav>Home | About</nav><h1>Kaltwerk price list 2024</h1><p>{PAGE_TEXT}</p></body></html>"""
NOTES = {
    "summary": "KW-9 costs EUR 1,180.",
    "findings": [{"claim": "KW-9 is EUR 1,180", "evidence": PAGE_TEXT, "source": "price list"}],
    "open_questions": [],
}


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    page = Reply(200, PAGE.encode(), {"content-type": "text/html; charset=utf-8"})
    with running(ScriptedHTTPServer(lambda _request: page)) as server:
        yield f"{server.url}/prices"


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[OpenAIFake]:
    with running(OpenAIFake()) as server:
        yield server


@pytest.fixture
async def router(openai_fake: OpenAIFake, store: SQLiteStore) -> AsyncIterator[Router]:
    openai_fake.reset()
    provider = OpenAIProvider(
        get_secret={"OPENAI_API_KEY": "sk-1"}.get, base_url=f"{openai_fake.url}/v1"
    )
    routed = router_for(store, {"openai": provider}, ["openai:gpt-5-mini"])
    yield routed
    await routed.aclose()


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[SQLiteLogBus]:
    opened = SQLiteLogBus(tmp_path / "bus.db")
    await opened.open()
    yield opened
    await opened.close()


FETCH_SERVER = StdioServer(
    command=str(BIN / "mcp-server-fetch"), args=["--allow-private-ips", "--ignore-robots-txt"]
)
TIME_SERVER = StdioServer(command=str(BIN / "mcp-server-time"), args=["--local-timezone", "UTC"])


def spec_for(task_id: str, tools: list[str]) -> TaskSpec:
    module = ModuleSpec(
        id="pricing",
        title="Unit pricing",
        brief="Establish the unit price of the KW-9.",
        output_type="research_notes",
        tools=tools,
        max_turns=3,
    )
    return TaskSpec(
        task_id=task_id,
        request="Heat pumps for the Lyon depot",
        persona="market_research",
        plan=Plan(modules=[module]),
        budget_nano=10**9,
    )


async def _run(
    store: SQLiteStore, bus: SQLiteLogBus, router: Router, catalog: ToolCatalog, tools: list[str]
) -> str:
    task_id = await funded_task(store)
    build = BuildMaster(store=store, bus=bus, router=router, tools=catalog, max_escalations=0)
    await build.execute(spec_for(task_id, tools))
    return task_id


def _second_request(fake: OpenAIFake, offered: str) -> str:
    """The messages of the second of the two model turns; the first offered ``offered``. Chat
    Completions' shape, or the Responses API's where the model searched itself."""
    first, second = fake.requests
    names = [t.get("name") or t.get("function", {}).get("name") for t in first.body["tools"]]
    assert offered in names
    return json.dumps(second.body.get("messages") or second.body["input"])


async def test_mcp_fetch_over_stdio_feeds_the_page_to_the_next_turn(
    store: SQLiteStore,
    bus: SQLiteLogBus,
    router: Router,
    openai_fake: OpenAIFake,
    page_url: str,
) -> None:
    openai_fake.script(
        openai_fake.tool_calls(("call_1", "fetch__fetch", {"url": page_url})),
        openai_fake.structured(NOTES),
    )
    catalog = ToolCatalog({"fetch": FETCH_SERVER})
    task_id = await _run(store, bus, router, catalog, ["mcp:fetch"])

    # The page's text, fetched by the real server, reached the model's next turn as a tool result.
    second = json.loads(_second_request(openai_fake, "fetch__fetch"))
    tool_messages = [m for m in second if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_1"]
    assert PAGE_TEXT in tool_messages[0]["content"]
    # The transcript has both turns and the call with its result.
    events = await bus.replay(task_id)
    turns = [e.payload for e in events if e.type == TURN and e.module_id == "pricing"]
    tools = [e.payload for e in events if e.type == TOOL and e.module_id == "pricing"]
    assert [t["turn"] for t in turns] == [1, 2]
    assert turns[0]["tool_calls"][0]["name"] == "fetch__fetch"
    assert turns[1]["data"] == NOTES
    assert len(tools) == 1
    assert PAGE_TEXT in tools[0]["content"]
    assert page_url in tools[0]["arguments"]
    # One ledger row per turn, both served.
    rows = [r for r in await store.list_ledger(task_id) if r.module_id == "pricing"]
    assert [r.outcome for r in rows] == ["ok", "ok"]
    assert {r.call_id for r in rows} == {t["call_id"] for t in turns}
    [artifact] = (await store.latest_artifacts(task_id)).values()
    assert artifact.content == NOTES


async def test_mcp_time_over_stdio_answers_the_model(
    store: SQLiteStore, bus: SQLiteLogBus, router: Router, openai_fake: OpenAIFake
) -> None:
    openai_fake.script(
        openai_fake.tool_calls(("call_t", "time__get_current_time", {"timezone": "Europe/Paris"})),
        openai_fake.structured(NOTES),
    )
    catalog = ToolCatalog({"time": TIME_SERVER})
    task_id = await _run(store, bus, router, catalog, ["mcp:time/get_current_time"])

    second = json.loads(_second_request(openai_fake, "time__get_current_time"))
    [result] = [m for m in second if m["role"] == "tool"]
    assert "Europe/Paris" in result["content"]
    assert '"datetime"' in result["content"]
    rows = [r for r in await store.list_ledger(task_id) if r.module_id == "pricing"]
    assert len(rows) == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def http_mcp() -> Iterator[tuple[str, list[str]]]:
    """A streamable-HTTP MCP server on loopback with one tool; the list records its calls."""
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    calls: list[str] = []
    server = MCPServer("catalogue")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def lookup(product: str) -> str:
        """Look up a product's list price."""
        calls.append(product)
        return f"{product}: EUR 1,180 list price"

    port = _free_port()
    config = uvicorn.Config(
        server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
    )
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    while not web.started:
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}/mcp", calls
    web.should_exit = True
    thread.join(timeout=10)


async def test_a_streamable_http_server_is_called_once_per_tool_call(
    store: SQLiteStore,
    bus: SQLiteLogBus,
    router: Router,
    openai_fake: OpenAIFake,
    http_mcp: tuple[str, list[str]],
) -> None:
    url, calls = http_mcp
    calls.clear()
    openai_fake.script(
        openai_fake.tool_calls(
            ("c1", "catalogue__lookup", {"product": "KW-9"}),
            ("c2", "catalogue__lookup", {"product": "KW-12"}),
        ),
        openai_fake.structured(NOTES),
    )
    catalog = ToolCatalog({"catalogue": HttpServer(url=url)})
    await _run(store, bus, router, catalog, ["mcp:catalogue/*"])

    assert calls == ["KW-9", "KW-12"]
    second = json.loads(_second_request(openai_fake, "catalogue__lookup"))
    results = [m["content"] for m in second if m["role"] == "tool"]
    assert results == ["KW-9: EUR 1,180 list price", "KW-12: EUR 1,180 list price"]


async def test_a_run_needing_a_broken_server_stops_before_spending(
    store: SQLiteStore, bus: SQLiteLogBus, router: Router, openai_fake: OpenAIFake, tmp_path: Path
) -> None:
    catalog = ToolCatalog({"fetch": StdioServer(command=str(tmp_path / "no-such-server"))})
    task_id = await funded_task(store)
    build = BuildMaster(store=store, bus=bus, router=router, tools=catalog, max_escalations=0)

    with pytest.raises(ConfigError, match="mcp:fetch could not start") as stopped:
        await build.execute(spec_for(task_id, ["mcp:fetch"]))

    # The same way on as when planning stops for it: fix the server, then resume the task.
    [line] = stopped.value.problems
    assert line.endswith(
        f"; task {task_id} stopped before its modules ran: fix it, then agentfirm resume {task_id}"
    )
    assert openai_fake.requests == []
    assert await store.list_ledger(task_id) == []


NOTES_SERVER = Path(__file__).parents[1] / "fakes" / "mcp_notes_server.py"


@pytest.mark.parametrize("allowed", [(), ("mcp:notes/write_note",)], ids=["yes", "allow-tool"])
async def test_a_destructive_mcp_tool_runs_only_when_allowed(
    store: SQLiteStore,
    bus: SQLiteLogBus,
    router: Router,
    openai_fake: OpenAIFake,
    tmp_path: Path,
    allowed: tuple[str, ...],
) -> None:
    """``--yes`` (``AutoDecider``) denies a tool whose annotations say it changes things, and
    the transcript says so; ``--allow-tool`` lets it run."""
    notebook = tmp_path / "notebook.txt"
    server = StdioServer(command=sys.executable, args=[str(NOTES_SERVER), str(notebook)])
    openai_fake.script(
        openai_fake.tool_calls(("c1", "notes__write_note", {"text": "KW-9 is EUR 1,180"})),
        openai_fake.structured(NOTES),
    )
    task_id = await funded_task(store)
    build = BuildMaster(
        store=store,
        bus=bus,
        router=router,
        tools=ToolCatalog({"notes": server}),
        max_escalations=0,
        consent=AutoDecider(allowed).approve_tool,
    )
    await build.execute(spec_for(task_id, ["mcp:notes"]))

    [event] = [e.payload for e in await bus.replay(task_id) if e.type == TOOL]
    if allowed:
        assert notebook.read_text() == "KW-9 is EUR 1,180\n"
        assert not event["denied"]
        assert event["content"] == "written"
    else:
        assert not notebook.exists()
        assert event["denied"]
        assert event["content"].startswith("Denied")


async def test_web_search_uses_the_configured_mcp_search_tool(
    store: SQLiteStore,
    bus: SQLiteLogBus,
    router: Router,
    openai_fake: OpenAIFake,
    http_mcp: tuple[str, list[str]],
) -> None:
    """A module given web_search gets the search tool the settings name (``web_search_tool``),
    here the catalogue server's, beside the model's own search (OpenAI's, for gpt-5-mini)."""
    url, calls = http_mcp
    calls.clear()
    openai_fake.script(
        openai_fake.tool_calls(("c1", "catalogue__lookup", {"product": "KW-9"})),
        openai_fake.structured(NOTES),
    )
    catalog = ToolCatalog({"catalogue": HttpServer(url=url)}, search="mcp:catalogue/lookup")
    await _run(store, bus, router, catalog, ["web_search"])

    assert calls == ["KW-9"]
    assert "KW-9: EUR 1,180" in _second_request(openai_fake, "catalogue__lookup")


async def test_unavailable_says_in_one_line_each_why_a_server_cannot_be_used(
    tmp_path: Path,
) -> None:
    """What stops a run before it plans (and what ``plan`` warns of): a bad command, a server
    that dies on start, one that never answers, one mcp.json lacks — each named, with a fix."""
    crash = tmp_path / "crash.py"
    crash.write_text("import sys\nsys.stderr.write('missing FOO_TOKEN\\n')\nsys.exit(3)\n")
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(600)\n")
    servers = {
        "nosuch": StdioServer(command=str(tmp_path / "no-such-server")),
        "crash": StdioServer(command=sys.executable, args=[str(crash)]),
        "hang": StdioServer(command=sys.executable, args=[str(hang)]),
    }
    catalog = ToolCatalog(servers, start_timeout_s=2)

    problems = await catalog.unavailable(
        ["fetch_url", "mcp:gone", "mcp:nosuch", "mcp:crash/*", "mcp:hang/tick"]
    )

    gone, crashed, hung, nosuch = problems
    assert "names MCP server 'gone', which mcp.json does not list" in gone
    assert "missing FOO_TOKEN" in crashed
    assert "check the command, args and env of 'crash' in mcp.json" in crashed
    assert "did not answer within 2s" in hung
    assert "raise mcp_start_timeout_s" in hung
    assert "check the command of 'nosuch' in mcp.json" in nosuch
    assert all("\n" not in problem for problem in problems)
