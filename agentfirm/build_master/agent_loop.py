"""A module's agent loop: the sub-agent may call its tools for up to ``max_turns`` model turns,
then gives its structured output.

Each turn is one router call (reserved, settled, one ledger row per attempt); the tools it asks
for run between turns and their results go back in the next. A refusal for budget propagates like
any refusal: the module waits at the budget gate and runs again, replaying from the journal the
turns and tool calls it already completed instead of paying for them twice. Arguments that are not
valid for the tool get one repair; a second bad call ends tool use. Reaching ``max_turns`` asks
for the output with what it has, and the outcome says so (``exhausted``). A tool with side effects
runs only when ``approve`` says yes. Every tool runs at most once: it is journaled as started
first, and a call found started but unfinished after a crash is not run again (the model is told
its outcome is unknown, and decides). A turn asked but not answered before a crash is handed back
to the router, which takes the answer its provider kept (OpenAI with ``openai_store``) instead of
asking again; with none to be had it is asked again (the transcript says so; the router books the
lost request). A tool call made by a simulated model
(the offline provider) is not run: its result says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import structlog

from agentfirm.build_master.journal import Journal, TurnRecord
from agentfirm.domain.calls import InFlight
from agentfirm.domain.models import Tier
from agentfirm.domain.tools import ToolCall, ToolRequest, ToolResult, ToolSpec
from agentfirm.errors import BudgetExceeded, ProviderError
from agentfirm.router.attempt import answer as answered_within
from agentfirm.router.attempt import finish
from agentfirm.router.base import CallResult, Message, Usage, web_search_allowed
from agentfirm.tools.base import ToolError
from agentfirm.tools.catalog import ModuleTools

log = structlog.get_logger(__name__)

Approve = Callable[[ToolSpec, ToolCall], Awaitable[bool]]
"""Asked before a tool with side effects runs: True lets it run."""
Consent = Callable[[str, str, ToolRequest], Awaitable[bool]]
"""A decider's ``approve_tool(task_id, module_id, request)``: the Build Master's side of
``Approve``."""

TOOLS_RULE = (
    "You may use the tools you are given to look things up before you answer: ask for several "
    "at once when they do not depend on each other. Cite what a tool returned where you use it. "
    "When you have what you need, answer with the output object."
)
EXHAUSTED_PROMPT = (
    "You have used all your tool turns. Answer now with the output object, using what you have; "
    "say inside it what you could not check."
)
REPAIRS_SPENT_PROMPT = (
    "Your tool arguments were invalid twice. Answer now with the output object, using what you "
    "have; say inside it what you could not check."
)
TOOL_DEADLINE_S = 24 * 3600.0
"""No deadline of the loop's own: each tool keeps its own timeout (an MCP call's, a fetch's)."""
SIMULATED_RESULT = (
    "[simulated] {name} was not run: a simulated model asked for it, so no real call was made."
)
INTERRUPTED = (
    "{name} was interrupted: the process stopped after this call started and before its result "
    "was recorded, so its outcome is unknown. It is not run twice on its own; {advice}"
)
CUT_OFF = (
    "{name} was cut off: the run was stopped (Ctrl-C or a cancel) while this call ran and "
    "before it answered, so its outcome is unknown. It is not run twice on its own; {advice}"
)
REFUSED = "{name} was refused for budget before it ran: call it again if you still need it."
INTERRUPTED_READ = "call it again if you still need what it returns."
INTERRUPTED_EFFECT = (
    "it can change things, so it may or may not have taken effect: check before relying on it "
    "or calling it again."
)


async def deny_side_effects(spec: ToolSpec, call: ToolCall) -> bool:
    """The default consent: tools that may change things are refused."""
    return False


async def deny_all(task_id: str, module_id: str, request: ToolRequest) -> bool:
    """No one to ask: tools that may change things are refused."""
    return False


def approver(
    consent: Consent, task_id: str, module_id: str, redact: Callable[[str], str]
) -> Approve:
    """``consent`` as one module's ``Approve``: the call shown as a ``ToolRequest``, its
    arguments redacted (the question is stored and shown)."""

    async def approve(spec: ToolSpec, call: ToolCall) -> bool:
        arguments = call.raw_arguments or json.dumps(call.arguments, ensure_ascii=False)
        request = ToolRequest(call.id, call.name, spec.origin, redact(arguments))
        return await consent(task_id, module_id, request)

    return approve


@dataclass(frozen=True)
class LoopOutcome:
    data: dict[str, Any]
    call: CallResult
    """Every turn's cost and usage added up; provider and model of the last."""
    turns: int
    tool_calls: int
    exhausted: bool
    """It reached ``max_turns`` (or spent its repair) and answered with what it had."""


def _argument_problem(spec: ToolSpec, call: ToolCall) -> str | None:
    if call.arguments is None:
        return f"the arguments are not a JSON object: {call.raw_arguments[:200]!r}"
    import jsonschema

    try:
        jsonschema.validate(call.arguments, spec.input_schema)
    except jsonschema.ValidationError as err:
        return f"the arguments do not fit the tool's schema: {err.message}"
    except jsonschema.SchemaError:
        return None  # the server's schema is broken, not the model's call: let the tool judge
    return None


def combined(results: Sequence[CallResult]) -> CallResult:
    """One ``CallResult`` for the whole loop: costs, usage, latency and attempts added up."""
    last = results[-1]
    return dataclasses.replace(
        last,
        usage=Usage(
            input_tokens=sum(r.usage.input_tokens for r in results),
            cached_input_tokens=sum(r.usage.cached_input_tokens for r in results),
            output_tokens=sum(r.usage.output_tokens for r in results),
            cache_write_tokens=sum(r.usage.cache_write_tokens for r in results),
            web_searches=sum(r.usage.web_searches for r in results),
        ),
        cost_nano=sum(r.cost_nano for r in results),
        latency_ms=sum(r.latency_ms for r in results),
        simulated=any(r.simulated for r in results),
        attempts=[a for r in results for a in r.attempts],
        tool_calls=(),
        # A page cited on any turn (a search before a tool call) is a source of the answer.
        sources=tuple(dict.fromkeys(link for r in results for link in r.sources)),
    )


SEARCH_SPEC = ToolSpec(
    "web_search",
    "Search the web and get a short answer with the pages it rests on. Ask one specific "
    "question per call.",
    {
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to find out."}},
        "required": ["query"],
    },
    origin="provider web search (a grounded call of its own)",
)
SEARCH_PROMPT = (
    "Search the web for this and answer in a few sentences, with the figures and names you "
    "found and the pages they come from: {query}"
)
SEARCH_MAX_TOKENS = 1024


@dataclass
class GroundedSearch:
    """``web_search`` as a function tool, for a model that cannot search the web while it is
    offered tools (Gemini): each call is a call of its own, without tools and allowed to search
    (grounded on Google Search), through the router like any turn: reserved, its search fee
    too, and on the ledger. Its results are kept for the loop's cost."""

    call_model: Callable[..., Awaitable[CallResult]]
    tier: Tier
    spent: list[CallResult] = dataclasses.field(default_factory=list)

    @property
    def spec(self) -> ToolSpec:
        return SEARCH_SPEC

    async def call(self, arguments: dict[str, Any]) -> str:
        query = str(arguments.get("query", "")).strip()
        if not query:
            raise ToolError("web_search needs a query")
        with web_search_allowed():
            result = await self.call_model(
                tier=self.tier,
                messages=[Message("user", SEARCH_PROMPT.format(query=query))],
                max_tokens=SEARCH_MAX_TOKENS,
            )
        self.spent.append(result)
        return result.text


@dataclass
class AgentLoop:
    """One module's loop. ``call`` is the router's ``call`` bound to the module's task."""

    call: Callable[..., Awaitable[CallResult]]
    tier: Tier
    output_schema: dict[str, Any]
    max_tokens: int
    tools: ModuleTools
    max_turns: int
    journal: Journal
    approve: Approve = deny_side_effects
    grounded_search: bool = False
    """The model cannot search the web while offered tools (``searches_beside_tools``): with
    ``web_search`` allowed it gets the ``GroundedSearch`` function instead."""
    in_flight: InFlight | None = None
    """Where each tool call is kept while it runs: a second Ctrl-C cuts those off."""
    grace_s: float = 0.0
    """How long a tool call whose module was cancelled may still take to answer."""

    async def run(self, messages: Sequence[Message]) -> LoopOutcome:
        # The rule goes before the module's own brief, which stays the last thing it reads.
        history = [*messages[:-1], Message("user", TOOLS_RULE), *messages[-1:]]
        searcher: GroundedSearch | None = None
        if self.grounded_search and self.tools.web_search:
            searcher = GroundedSearch(self.call, self.tier)
            self.tools = ModuleTools({**self.tools.tools, SEARCH_SPEC.name: searcher})
        results: list[CallResult] = []
        repairs_left = 1
        calls_run = 0
        stop_prompt: str | None = None
        turn = 0
        while True:
            turn += 1
            if stop_prompt is None and turn > self.max_turns:
                stop_prompt = EXHAUSTED_PROMPT
            if stop_prompt is not None:
                history.append(Message("user", stop_prompt))
            result = await self._turn(turn, history, final=stop_prompt is not None)
            results.append(result)
            if not result.tool_calls:
                data = result.data
                if data is None:
                    raise ProviderError(
                        f"{result.provider}:{result.model} gave no output object",
                        hint="retry, or put a model with structured output first in the chain",
                    )
                spent = [*(searcher.spent if searcher is not None else ()), *results]
                return LoopOutcome(
                    data, combined(spent), turn, calls_run, exhausted=stop_prompt is not None
                )
            if stop_prompt is not None:
                raise ProviderError(
                    f"{result.provider}:{result.model} asked for tools after they were withdrawn"
                )
            answers = []
            for call in result.tool_calls:
                answer, malformed = await self._tool(turn, call, result.simulated, repairs_left)
                if malformed:
                    if repairs_left == 0:
                        stop_prompt = REPAIRS_SPENT_PROMPT
                    repairs_left = max(repairs_left - 1, 0)
                else:
                    calls_run += 1
                answers.append(answer)
            history += [
                Message("assistant", result.text, tool_calls=result.tool_calls),
                Message("tool", "", tool_results=tuple(answers)),
            ]

    async def _turn(self, turn: int, history: list[Message], *, final: bool) -> CallResult:
        recorded = await self.journal.turn(turn, history)
        if recorded is not None:
            return recorded.result
        search = self.tools.web_search and not final
        try:
            with web_search_allowed() if search else contextlib.nullcontext():
                result = await self.call(
                    tier=self.tier,
                    messages=history,
                    output_schema=self.output_schema,
                    max_tokens=self.max_tokens,
                    tools=() if final else self.tools.specs,
                    sent=partial(self.journal.record_sent, turn),
                    recover=self.journal.unanswered(turn),
                )
        except BudgetExceeded:
            await self.journal.record_lost(turn, "refused for budget: nothing was sent")
            raise
        except ProviderError as err:
            await self.journal.record_lost(turn, f"failed: {err}")
            raise
        await self.journal.record_turn(TurnRecord(turn, history, result, final))
        return result

    async def _tool(
        self, turn: int, call: ToolCall, simulated: bool, repairs_left: int
    ) -> tuple[ToolResult, bool]:
        """The result of one call and whether its arguments were malformed. Journaled: a call
        completed before a restart is not run again."""
        recorded = await self.journal.tool(turn, call.id)
        if recorded is not None:
            return recorded.result, recorded.malformed
        tool = self.tools.tools.get(call.name)
        malformed = False
        denied = False
        interrupted = False
        stopped = False
        if tool is None:
            known = ", ".join(self.tools.tools) or "none"
            answer = ToolResult(
                call.id, call.name, f"No tool named {call.name}; yours: {known}.", True
            )
        elif (problem := _argument_problem(tool.spec, call)) is not None:
            malformed = True
            again = "send the call again with valid arguments" if repairs_left else "stop using it"
            answer = ToolResult(call.id, call.name, f"Invalid call: {problem}; {again}.", True)
        elif simulated:
            answer = ToolResult(call.id, call.name, SIMULATED_RESULT.format(name=call.name))
        elif self.journal.was_started(turn, call.id):
            interrupted = True
            advice = INTERRUPTED_EFFECT if tool.spec.side_effects else INTERRUPTED_READ
            answer = ToolResult(
                call.id, call.name, INTERRUPTED.format(name=call.name, advice=advice), True
            )
        elif tool.spec.side_effects and not await self.approve(tool.spec, call):
            denied = True
            answer = ToolResult(
                call.id,
                call.name,
                f"Denied: {call.name} can change things outside this task and the human did "
                "not allow it. Do without it.",
                True,
            )
        else:
            await self.journal.record_start(turn, call)
            try:
                answer, stopped = await self._run(tool.call, call)
            except asyncio.CancelledError:
                try:
                    await finish(self._cut_off(turn, call, tool.spec))
                except Exception as err:  # its start mark stays: a rerun says the same
                    log.warning("tool.cut_off_unjournaled", tool=call.name, error=repr(err))
                raise
            except BudgetExceeded:
                # Its own model call (web_search) was refused: nothing ran, so say that rather
                # than leave it started (a rerun would call its outcome unknown), then pause.
                await self._journal_unanswered(turn, call, REFUSED.format(name=call.name))
                raise
        journaled = self.journal.record_tool(
            turn,
            call,
            answer,
            simulated=simulated,
            denied=denied,
            malformed=malformed,
            interrupted=interrupted,
        )
        if stopped:  # it answered within the grace of a stop: journaled, then the stop goes on
            await finish(journaled)
            raise asyncio.CancelledError
        await journaled
        return answer, malformed

    async def _cut_off(self, turn: int, call: ToolCall, spec: ToolSpec) -> None:
        """Journal ``call``, started, as cut off by a stop before it answered: as after a crash
        (``journal.STARTED``), it is not run again, and the model is told its outcome is
        unknown — here at once, in words that say why."""
        advice = INTERRUPTED_EFFECT if spec.side_effects else INTERRUPTED_READ
        said = CUT_OFF.format(name=call.name, advice=advice)
        await self._journal_unanswered(turn, call, said, cut_off=True)

    async def _journal_unanswered(
        self, turn: int, call: ToolCall, said: str, *, cut_off: bool = False
    ) -> None:
        """Journal ``call`` as ended without its own answer: ``said`` is what the model reads
        (an error result). ``cut_off``: it ran and a stop cut it off, its outcome unknown."""
        await self.journal.record_tool(
            turn,
            call,
            ToolResult(call.id, call.name, said, True),
            simulated=False,
            denied=False,
            malformed=False,
            interrupted=cut_off,
            cut_off=cut_off,
        )

    async def _run(
        self, run: Callable[[dict[str, Any]], Awaitable[str]], call: ToolCall
    ) -> tuple[ToolResult, bool]:
        """``run``'s result as the model reads it, and whether the module was cancelled
        meanwhile (it stops once the result is journaled). Kept in ``in_flight`` while it runs:
        a cancelled module gives it ``grace_s`` more to answer (what it did is then known), and
        a second Ctrl-C cuts it off; cut off, ``CancelledError`` is raised."""
        assert call.arguments is not None
        running = asyncio.ensure_future(run(call.arguments))
        kept = self.in_flight.tools if self.in_flight is not None else set()
        kept.add(running)
        try:
            stopped = await answered_within(
                running, deadline_s=TOOL_DEADLINE_S, grace_s=self.grace_s
            )
        finally:
            kept.discard(running)
        if running.cancelled():
            raise asyncio.CancelledError
        try:
            return ToolResult(call.id, call.name, running.result()), stopped
        except (BudgetExceeded, ProviderError):
            raise  # a tool's own model call (web_search) refused or failed: as a turn's would
        except ToolError as err:
            return ToolResult(call.id, call.name, str(err), True), stopped
        except Exception as err:  # a tool's own bug must not fail the module: the model is told
            log.warning("tool.failed", tool=call.name, error=repr(err))
            failed = f"{call.name} failed: {type(err).__name__}"
            return ToolResult(call.id, call.name, failed, True), stopped
