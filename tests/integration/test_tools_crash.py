"""SIGKILL a tool-using module at random points, ten times, then let it finish: no answered
model turn is asked again (counted at the provider fake), no tool call runs twice (counted at
the MCP server), and what the crashes cut off is in the transcript and on the ledger.

The module asks, in turn 1, for a read-only call and a side-effecting one at once, then answers
in turn 2, with an answer that fails its schema, and again in that turn's repair ask. The kill
points, drawn at random (the seed is in every failure message; ``AGENTFIRM_CRASH_SEED`` replays
one) and taken in the order the work reaches them: right after any journal mark (an ask about
to be sent, a turn answered, a tool call started or finished), while the provider holds an
ask's request, and inside either tool after it took effect. The process is
killed with SIGKILL, so nothing of its own clean-up runs. Children are forked from a
``forkserver`` that imported the child's code once: each starts in a fraction of a second.

With ``openai_store`` on, the fake keeps each answer, as OpenAI does, whether or not the client
stays to read it. A kill while the provider holds a turn comes either once it has answered and
kept the answer, or while it is still generating it (``held``): that answer is kept only after
the client died, once the resumed run has looked for it in vain (twice), so the resumed run must
wait for it. Either way the resumed run takes the answer from the provider's record instead of
asking again (the repair's too, after the answer it repairs), so each ask reaches the provider
exactly once, and its ledger row is booked at what it cost, once. Without it a turn is asked
again for each crash that cut it off, its first ask too when the crash cut off its repair. The
provider timeout is short (``TIMEOUT_S``), so that a wait for a record that never comes would be
short too."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from agentfirm.build_master.journal import STARTED, TOOL, TURN, TURN_SENT, transcript
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.domain.models import ModuleSpec, Plan, TaskSpec
from agentfirm.router.providers.openai import CALL_ID_KEY
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.http_fake import Recorded, Reply, running
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.routing import funded_task
from tests.integration.test_mcp_tools import _free_port

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

NOTES = {"summary": "noted", "findings": [{"claim": "c", "evidence": "e", "source": "s"}]}
NOTES["open_questions"] = []
CHILD = "tests.integration.tools_crash_child"
TOOLS = {"c1": "read_price", "c2": "write_note"}
"""Turn 1's calls, in the order they run."""
TIMEOUT_S = 5.0
"""The child's provider timeout: a cut-off call's record may still come until some 11 s after it
was sent (``reconcile.record_deadline``)."""
MISSES = 2
"""How many lookups of a held answer find nothing before it is kept."""
REPAIR = 3
"""The ask key (the fake's counts, the kill points) of turn 2's repair; 1 and 2: the turns'
first asks."""


def sent_mark(ask: int) -> list[Any]:
    """The journal mark (``tools_crash_child.DyingBus``) of an attempt of ``ask``."""
    return [TURN_SENT, 2 if ask == REPAIR else ask, None, ask == REPAIR]


@dataclass
class Crashes:
    """What the test process shares with its fakes: the running child, where it is to die, and
    what the provider and the MCP server saw."""

    stored: bool = False
    """``openai_store`` on: a turn held at the provider is answered (and kept) before the kill."""
    child: BaseProcess | None = None
    kill_at: int | None = None
    """The ask held at the provider when the child is killed."""
    kill_on_receipt: bool = False
    """Kill the child once the fake has billed and kept the answer it is about to send."""
    kill_in_tool: str | None = None
    hold: bool = False
    """A kill at the provider comes while it still generates the answer (kept later)."""
    kill_held: bool = False
    """Kill the child before the fake bills and keeps the answer it is generating."""
    asked: Counter[int] = field(default_factory=Counter)
    answered: Counter[int] = field(default_factory=Counter)
    tool_runs: Counter[str] = field(default_factory=Counter)

    def kill(self) -> None:
        """SIGKILL the child and wait until it is gone, so nothing reaches it alive."""
        # Read once: once it is gone, the test may start the next one under the same name.
        child = self.child
        assert child is not None
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        wait([child.sentinel], timeout=30)


class Provider:
    """Turn 1 asks for both tools at once; turn 2 (tool results in the chat) answers, not in
    its schema; its repair (the answer and the repair prompt after the tool results) answers."""

    def __init__(self, fake: OpenAIFake, crashes: Crashes) -> None:
        self.fake = fake
        self.crashes = crashes

    def __call__(self, request: Recorded) -> Reply:
        body: dict[str, Any] = request.body
        roles = [m.get("role") for m in body.get("messages", [])]
        ask = 1 if "tool" not in roles else REPAIR if roles[-2:] == ["assistant", "user"] else 2
        self.crashes.asked[ask] += 1
        if ask == self.crashes.kill_at and self.crashes.hold:
            self.crashes.kill_held = True  # killed while its answer is still generated
        elif ask == self.crashes.kill_at and self.crashes.stored:
            self.crashes.kill_on_receipt = True  # answered: killed once the answer is kept
        elif ask == self.crashes.kill_at:
            self.crashes.kill()
            return Reply(reset=True)
        self.crashes.answered[ask] += 1
        if ask == 1:
            return self.fake.tool_calls(
                ("c1", "notes__read_price", {"product": "KW-9"}),
                ("c2", "notes__write_note", {"text": "KW-9 noted"}),
            )(request)
        if ask == 2:
            return self.fake.ok("KW-9 is EUR 1,180; noted.")(request)  # no JSON: repaired
        return self.fake.structured(NOTES)(request)


class KeepingFake(OpenAIFake):
    """The OpenAI fake, killing the child right after it billed and kept an answer when told to:
    the answer is then on record, and never read. Or killing it before (``kill_held``): the
    answer, still being generated, is billed and kept once the record has been looked up
    ``MISSES`` times in vain, after its client died."""

    def __init__(self, crashes: Crashes) -> None:
        super().__init__()
        self.crashes = crashes
        self.held: dict[str, tuple[Recorded, Reply]] = {}
        self.misses: Counter[str] = Counter()

    def _received(self, request: Recorded, reply: Reply) -> None:
        if self.crashes.kill_held:
            self.crashes.kill_held = False
            # Held before the kill: the resumed run cannot look for it any sooner.
            with self._lock:
                self.held[request.body["metadata"][CALL_ID_KEY]] = (request, reply)
            self.crashes.kill()
            return
        super()._received(request, reply)
        if self.crashes.kill_on_receipt:
            self.crashes.kill_on_receipt = False
            self.crashes.kill()

    def _direct(self, request: Recorded) -> Reply | None:
        if request.method != "GET":
            return super()._direct(request)
        [call_id] = parse_qs(request.query).get(f"metadata[{CALL_ID_KEY}]", [""])
        with self._lock:
            done = None
            if call_id in self.held and self.misses[call_id] >= MISSES:
                done = self.held.pop(call_id)
            self.misses[call_id] += 1
        if done is not None:
            super()._received(*done)  # generated at last: billed and kept
        return super()._direct(request)


@pytest.fixture(params=[False, True], ids=["asked-again", "openai-store"])
def crashes(request: pytest.FixtureRequest) -> Crashes:
    return Crashes(stored=request.param)


@pytest.fixture
def mcp_url(crashes: Crashes) -> Iterator[str]:
    """A streamable-HTTP MCP server in this process: ``read_price`` (read-only) and
    ``write_note`` (it changes things); each counts its runs and kills the child after its
    effect when told to."""
    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from mcp_types import ToolAnnotations

    server = MCPServer("notes")

    def ran(name: str) -> None:
        crashes.tool_runs[name] += 1
        if crashes.kill_in_tool == name:
            crashes.kill()

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def read_price(product: str) -> str:
        """A product's list price."""
        ran("read_price")
        return f"{product}: EUR 1,180"

    @server.tool(annotations=ToolAnnotations(destructive_hint=True, read_only_hint=False))
    def write_note(text: str) -> str:
        """Append a note to the shared notebook."""
        ran("write_note")
        return "written"

    port = _free_port()
    web = uvicorn.Server(
        uvicorn.Config(
            server.streamable_http_app(), host="127.0.0.1", port=port, log_level="critical"
        )
    )
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    while not web.started:
        threading.Event().wait(0.02)
    yield f"http://127.0.0.1:{port}/mcp"
    web.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def fake(crashes: Crashes) -> Iterator[OpenAIFake]:
    with running(KeepingFake(crashes)) as server:
        server.respond_with(Provider(server, crashes))
        yield server


Point = tuple[str, Any]
"""``("event", [type, turn, call_id, repair])``: die right after that journal mark (``None``:
any); ``("provider", ask)``: while the provider holds that ask (with ``openai_store``, once it
kept the answer); ``("held", ask)``: while the provider still generates that ask's answer
(``openai_store`` only); ``("tool", name)``: inside the tool."""


def draw(rng: random.Random, kills: int = 10, *, stored: bool = False) -> list[Point]:
    """``kills`` points in the order a run reaches them. The points of an ask (its "sent" mark,
    the provider holding it) are reached again after a crash there, so they may repeat; the
    others come at most once, and a tool is cut off right after its start mark or inside it,
    not both. Turn 2's points mix those of its first ask and of its repair: a crash in the
    repair has the first asked again. ``stored``: once the provider held an ask, its answer is
    (or will be) on record and it is not asked again, so each ask's points are its "sent"
    marks, then perhaps one at the provider; and at least one ask is cut off while its answer
    is generated."""
    middle: list[Point] = []
    if rng.random() < 0.5:
        middle.append(("event", [TURN, 1, None, None]))
    for call_id, tool in TOOLS.items():
        cut = rng.choice(["start", "inside", None])
        if cut == "start":
            middle.append(("event", [STARTED, 1, call_id, None]))
        elif cut == "inside":
            middle.append(("tool", tool))
        if rng.random() < 0.5:
            middle.append(("event", [TOOL, 1, call_id, None]))
    end: list[Point] = [("event", [TURN, 2, None, None])] if rng.random() < 0.5 else []
    left = kills - len(middle) - len(end)
    first = rng.randint(0, left)

    def mixed(asks: list[int], count: int) -> list[Point]:
        choices = [p for a in asks for p in [("event", sent_mark(a)), ("provider", a)]]
        return [rng.choice(choices) for _ in range(count)]

    if not stored:
        return [*mixed([1], first), *middle, *mixed([2, REPAIR], left - first), *end]
    by_ask: dict[int, list[Point]] = {1: [], 2: [], REPAIR: []}
    for asks, count in (([1], first), ([2, REPAIR], left - first)):
        for n, ask in enumerate(asks):
            many = count if n == len(asks) - 1 else rng.randint(0, count)
            count -= many
            by_ask[ask] = [("event", sent_mark(ask))] * many
            if many and rng.random() < 0.5:
                by_ask[ask][-1] = ("provider", ask)
    held = rng.choice([ask for ask, points in by_ask.items() if points])
    by_ask[held][-1] = ("held", held)
    return [*by_ask[1], *middle, *by_ask[2], *by_ask[REPAIR], *end]


async def test_sigkill_ten_times_then_resume_repeats_no_turn_and_no_tool_call(
    store: SQLiteStore, fake: OpenAIFake, crashes: Crashes, mcp_url: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("AGENTFIRM_CRASH_SEED") or random.randrange(10**6))
    points = draw(random.Random(seed), stored=crashes.stored)
    why = f"seed {seed}, kills {points}"
    task_id = await funded_task(store)
    module = ModuleSpec(id="notes", brief="Note the price.", tools=["mcp:notes"], max_turns=3)
    spec = TaskSpec(
        task_id=task_id, request="r", persona="p", plan=Plan(modules=[module]), budget_nano=10**9
    )
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([CHILD])
    from tests.integration.tools_crash_child import run

    def run_child(point: Point | None) -> int | None:
        kind, where = point or (None, None)
        crashes.kill_at = where if kind in ("provider", "held") else None
        crashes.hold = kind == "held"
        crashes.kill_in_tool = where if kind == "tool" else None
        config = {
            "db": str(store.path),
            "bus": str(tmp_path / "bus.db"),
            "url": f"{fake.url}/v1",
            "mcp": mcp_url,
            "die_after": where if kind == "event" else None,
            "store": crashes.stored,
            "timeout_s": TIMEOUT_S,
            "spec": spec.model_dump_json(),
        }
        crashes.child = child = context.Process(target=run, args=(config,))
        child.start()
        child.join(timeout=60)
        return child.exitcode

    codes = [run_child(point) for point in points]
    assert codes == [-signal.SIGKILL] * 10, why
    assert run_child(None) == 0, why

    # No answered ask was asked again: an ask is asked once more for each kill that cut off its
    # answer at the provider, turn 2's first for each that cut off its repair too (the turn was
    # not over), never after it was answered; with the answer on record, never.
    at_provider = Counter(where for kind, where in points if kind in ("provider", "held"))
    marks = Counter(
        REPAIR if where[3] else where[1]
        for kind, where in points
        if kind == "event" and where[0] == TURN_SENT
    )
    if crashes.stored:
        assert crashes.asked == crashes.answered == Counter({1: 1, 2: 1, REPAIR: 1}), why
        again = Counter[int]()
    else:
        in_repair = marks[REPAIR] + at_provider[REPAIR]
        assert crashes.answered == Counter({1: 1, 2: 1 + in_repair, REPAIR: 1}), why
        again = at_provider + Counter({2: in_repair})
        assert crashes.asked == Counter({1: 1, 2: 1, REPAIR: 1}) + again, why
    # No tool call ran twice. One cut off by a crash (inside, or right after its start mark) was
    # not run again: the model was told, and the transcript shows it interrupted.
    inside = {where for kind, where in points if kind == "tool"}
    at_start = {
        TOOLS[where[2]] for kind, where in points if kind == "event" and where[0] == STARTED
    }
    assert crashes.tool_runs == Counter({t: 1 for t in TOOLS.values() if t not in at_start}), why
    bus = SQLiteLogBus(tmp_path / "bus.db")
    await bus.open()
    entries = transcript(await bus.replay(task_id))
    await bus.close()
    interrupted = {e["tool"] for e in entries if e["kind"] == "tool" and e["interrupted"]}
    assert interrupted == {f"notes__{t}" for t in inside | at_start}, why
    assert sum(e["kind"] == "tool" for e in entries) == 2, why
    # Every ask a crash cut off is in the transcript (without the record, the repair's twice:
    # itself, and the first ask it repaired); each that reached the provider is on the ledger at
    # its reservation (an upper bound), and each answered ask at its price.
    cut = marks + again
    cut = Counter({1: cut[1], 2: cut[2] + cut[REPAIR]}) - Counter()
    assert Counter(e["turn"] for e in entries if e["kind"] == "lost") == cut, why
    recovered = Counter(e["turn"] for e in entries if e["kind"] == "model" and e.get("recovered"))
    expected = Counter({1: at_provider[1], 2: at_provider[REPAIR]}) - Counter()
    assert recovered == (expected if crashes.stored else Counter()), why
    rows = await store.list_ledger(task_id)
    if crashes.stored:
        # Each answer taken from the record is on the ledger at what it cost, booked once: the
        # ledger is the provider's bill, token for token.
        billed = fake.bill.items
        assert (
            Counter(r.outcome for r in rows)
            == Counter(ok=3 - at_provider.total(), cancelled=at_provider.total()) - Counter()
        ), why
        assert not any(r.upper_bound for r in rows), why
        assert sum(r.input_tokens for r in rows) == sum(b.input_tokens for b in billed), why
        assert sum(r.output_tokens for r in rows) == sum(b.output_tokens for b in billed), why
        spent = (await store.get_budget(task_id)).spent_nano
        assert spent == sum(r.cost_nano for r in rows), why
        [artifact] = (await store.latest_artifacts(task_id)).values()
        assert artifact.content == NOTES
        return
    outcomes = Counter(r.outcome for r in rows)
    # Each answered ask was read: none was killed once answered.
    ok = crashes.answered.total()
    assert outcomes == Counter(ok=ok, cancelled=at_provider.total()) - Counter(), why
    assert all(r.cost_nano > 0 for r in rows), why
    [artifact] = (await store.latest_artifacts(task_id)).values()
    assert artifact.content == NOTES
