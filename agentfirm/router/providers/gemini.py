"""``gemini``: the Gemini API through the official SDK (``google.genai.Client(...).aio``).

Structured output is Gemini's JSON mode: ``response_mime_type="application/json"`` with the
caller's schema as ``response_json_schema``. The SDK's retries and automatic continuation are off
(one router attempt is one HTTP request); the API version is pinned to ``v1beta``, where JSON
schemas are served. Web search: a free-text request that allows it (``ProviderRequest.web_search``)
carries the ``google_search`` grounding tool, and the pages the answer is grounded on are appended
to its text; structured requests never search (JSON mode and search do not combine on every
model). A grounded answer is billed a search fee on top of its tokens (see ``web_searches_of``).

Tools: function calling. Each ``ToolSpec`` is a function declaration (its schema as
``parameters_json_schema``); tool calls go back as ``function_call`` parts (with the thought
signature Gemini 3 requires echoed) and results as ``function_response`` parts. JSON mode and
function calling do not combine on every model, so with tools the output schema becomes one more
function, ``emit_output``, and the model must call a function (mode ``ANY``): a tool, or the
answer. Search beside tools: 2.x models refuse ``google_search`` and function declarations in one
request, so the agent loop gives a 2.x module allowed to search a ``web_search`` function instead,
answered by a grounded call without tools (``agent_loop.GroundedSearch``). Gemini 3 combines them
(Google's "combine built-in tools and function calling") when asked for its server-side tool
invocations (``ToolConfig.include_server_side_tool_invocations``): the reply then carries its
searches as ``tool_call``/``tool_response`` parts, which must go back unchanged, signatures and
all, with the function calls they came before. They travel as the first such call's
``ToolCall.signature`` (JSON, under ``SERVER_PARTS_KEY``, beside its own thought signature),
journaled with it like any signature.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentfirm.domain.tools import ToolCall
from agentfirm.router.base import Message, ProviderRequest, ProviderResponse, Usage
from agentfirm.router.errors import FatalProviderError, ProviderAuthError, ProviderError
from agentfirm.router.providers._common import (
    SdkProvider,
    connection_failed,
    malformed,
    markdown_links,
    retry_after_s,
    status_error,
    timed_out,
)
from agentfirm.router.tokens import estimate_messages, estimate_tokens

if TYPE_CHECKING:
    from google.genai import Client
    from google.genai.errors import APIError
    from google.genai.types import (
        GenerateContentConfig,
        GenerateContentResponse,
        GenerateContentResponseUsageMetadata,
        GroundingMetadata,
        Part,
    )

NAME = "gemini"
KEY_NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
API_VERSION = "v1beta"
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
MAX_WEB_SEARCHES = 1
"""Billed searches one grounded call to Gemini 2.x may run: it bills grounding per grounded
prompt, whatever number of queries the model ran for it."""
QUERY_ALLOWANCE = 3
"""Search queries reserved for one call to Gemini 3, which bills each query and has no cap to
declare: an allowance, not a bound (a call that runs more is booked in full all the same, and the
router reports the overrun), sized like the other providers' caps."""
_PER_PROMPT = re.compile(r"^(?:models/)?gemini-[12]\.")
_COMBINES = re.compile(r"^(?:models/)?gemini-3")
OUTPUT_FUNCTION = "emit_output"
SERVER_PARTS_KEY = "gemini_server_parts"
"""Where a ``ToolCall.signature`` carries the server-side tool parts that came before the call."""
_THOUGHT_KEY = "thought_signature"


def searches_beside_functions(model: str) -> bool:
    """Whether ``model`` may ground on Google Search in a request that declares functions
    (Gemini 3, with its server-side tool invocations handed back)."""
    return _COMBINES.match(model) is not None


def _error_details(exc: APIError) -> list[Mapping[str, Any]]:
    body = exc.details if isinstance(exc.details, Mapping) else {}
    error = body.get("error", body)
    details = error.get("details") if isinstance(error, Mapping) else None
    return [d for d in details if isinstance(d, Mapping)] if isinstance(details, list) else []


def _retry_delay(exc: APIError) -> float | None:
    """Gemini puts the wait in a ``google.rpc.RetryInfo`` detail (``"retryDelay": "7s"``); a
    proxy in front may send a ``retry-after`` header instead."""
    headers = getattr(exc.response, "headers", None)
    from_header = retry_after_s(headers) if headers is not None else None
    if from_header is not None:
        return from_header
    for detail in _error_details(exc):
        match = _DELAY.match(str(detail.get("retryDelay", "")))
        if match:
            return float(match[1])
    return None


def _bad_key(exc: APIError) -> bool:
    # Gemini answers a bad key with 400 INVALID_ARGUMENT, reason API_KEY_INVALID, not a 401.
    return any(detail.get("reason") == "API_KEY_INVALID" for detail in _error_details(exc))


def api_error(exc: APIError, key_env: str) -> ProviderError:
    """The router error for a Gemini API error."""
    message = exc.message or str(exc)
    if exc.code == 400 and _bad_key(exc):
        return ProviderAuthError(provider=NAME, key_env=key_env, status=400, detail=message)
    return status_error(
        provider=NAME,
        status=exc.code,
        message=message,
        key_env=key_env,
        retry_after=_retry_delay(exc),
    )


def request_config(request: ProviderRequest) -> GenerateContentConfig:
    from google.genai import types

    system = "\n\n".join(m.content for m in request.messages if m.role == "system")
    config = types.GenerateContentConfig(
        system_instruction=system or None,
        max_output_tokens=request.max_tokens,
        automatic_continuation=False,
        http_options=types.HttpOptions(timeout=max(1, round(request.timeout_s * 1000))),
    )
    if request.tools:
        declarations = [
            types.FunctionDeclaration(
                name=spec.name,
                description=spec.description,
                parameters_json_schema=spec.input_schema,
            )
            for spec in request.tools
        ]
        if request.output_schema is not None:
            declarations.append(
                types.FunctionDeclaration(
                    name=OUTPUT_FUNCTION,
                    description="Record your answer: one object matching the parameters.",
                    parameters_json_schema=request.output_schema,
                )
            )
            config.tool_config = types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(mode="ANY")
            )
        config.tools = [types.Tool(function_declarations=declarations)]
        if request.web_search and searches_beside_functions(request.model):
            config.tools.append(types.Tool(google_search=types.GoogleSearch()))
            tool_config = config.tool_config or types.ToolConfig()
            tool_config.include_server_side_tool_invocations = True
            config.tool_config = tool_config
    elif request.output_schema is not None:
        config.response_mime_type = "application/json"
        config.response_json_schema = request.output_schema
    elif request.web_search:
        config.tools = [types.Tool(google_search=types.GoogleSearch())]
    return config


def _parts(message: Message) -> list[Part]:
    from google.genai import types

    if message.role == "tool":
        return [
            types.Part(
                function_response=types.FunctionResponse(
                    id=r.call_id,
                    name=r.name,
                    response={"error" if r.is_error else "output": r.content},
                )
            )
            for r in message.tool_results
        ]
    parts = [types.Part(text=message.content)] if message.content else []
    for c in message.tool_calls:
        thought, server_parts = _carried(c.signature)
        parts += [types.Part.model_validate_json(json.dumps(part)) for part in server_parts]
        parts.append(
            types.Part(
                function_call=types.FunctionCall(id=c.id, name=c.name, args=c.arguments or {}),
                thought_signature=base64.b64decode(thought) if thought else None,
            )
        )
    return parts or [types.Part(text="")]


def _carried(signature: str) -> tuple[str, list[dict[str, Any]]]:
    """A call's thought signature (base64) and the server-side tool parts before it (each a
    ``Part`` as JSON). Another provider's signature (an OpenAI turn before a fallback) carries
    neither: Gemini would refuse it as corrupt."""
    if not signature.startswith("{"):
        return signature, []
    try:
        carried = json.loads(signature)
    except ValueError:
        return "", []
    if not isinstance(carried, dict):
        return "", []
    thought = carried.get(_THOUGHT_KEY)
    parts = carried.get(SERVER_PARTS_KEY)
    return (
        thought if isinstance(thought, str) else "",
        [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else [],
    )


def request_contents(request: ProviderRequest) -> list[Any]:
    from google.genai import types

    return [
        types.Content(role="model" if m.role == "assistant" else "user", parts=_parts(m))
        for m in request.messages
        if m.role != "system"
    ]


def tool_calls_of(response: GenerateContentResponse) -> tuple[ToolCall, ...]:
    """The functions the model called, ``emit_output`` (the answer) aside. Gemini may leave a
    call's id out: it is then named by its position."""
    candidates = response.candidates or []
    content = candidates[0].content if candidates else None
    calls = []
    server_parts: list[dict[str, Any]] = []
    for index, part in enumerate(content.parts or [] if content is not None else []):
        if part.tool_call is not None or part.tool_response is not None:
            # Gemini 3's own searches: handed back unchanged with the call they came before.
            server_parts.append(part.model_dump(mode="json", exclude_none=True))
            continue
        call = part.function_call
        if call is None or call.name == OUTPUT_FUNCTION:
            continue
        signature = (
            base64.b64encode(part.thought_signature).decode() if part.thought_signature else ""
        )
        if server_parts:
            signature = json.dumps({_THOUGHT_KEY: signature, SERVER_PARTS_KEY: server_parts})
            server_parts = []
        arguments = call.args if isinstance(call.args, dict) else None
        raw = json.dumps(call.args, ensure_ascii=False)
        calls.append(
            ToolCall(call.id or f"call_{index}", call.name or "", arguments, raw, signature)
        )
    return tuple(calls)


def web_searches_of(response: GenerateContentResponse, model: str) -> int:
    """The billed searches behind a reply: none unless its answer was grounded by Google Search
    (web search queries or grounding chunks in the candidate's grounding metadata). Gemini 2.x
    bills grounding per grounded prompt, so a grounded answer is one search however many
    queries it ran; other models (Gemini 3 bills each query) count each query, at least one.
    Priced at list: the free daily allowance is account-wide and invisible here, so a search it
    covered is still booked, and the budget can never be overspent."""
    candidates = response.candidates or []
    metadata = candidates[0].grounding_metadata if candidates else None
    content = candidates[0].content if candidates else None
    # Gemini 3 searching beside functions also shows each search as a server-side tool call.
    server = sum(
        1
        for part in (content.parts or [] if content is not None else [])
        if part.tool_call is not None and part.tool_call.tool_type == "GOOGLE_SEARCH_WEB"
    )
    queries = len(metadata.web_search_queries or ()) if metadata is not None else 0
    if not queries and not server and (metadata is None or not metadata.grounding_chunks):
        return 0
    return 1 if _PER_PROMPT.match(model) else max(queries, server, 1)


def usage_of(
    metadata: GenerateContentResponseUsageMetadata | None,
    request: ProviderRequest,
    text: str,
    web_searches: int = 0,
) -> Usage:
    """Gemini's ``prompt_token_count`` includes cached tokens; thinking tokens are billed as
    output. Missing metadata gets estimates, so the call is never priced as free."""
    if metadata is None:
        return Usage(
            input_tokens=estimate_messages(request.messages),
            output_tokens=estimate_tokens(text),
            web_searches=web_searches,
        )
    return Usage(
        input_tokens=metadata.prompt_token_count or 0,
        cached_input_tokens=metadata.cached_content_token_count or 0,
        output_tokens=(metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0),
        web_searches=web_searches,
    )


def text_of(response: GenerateContentResponse) -> str:
    """The answer's text parts (thought summaries left out), with the pages a grounded answer
    rests on. Raises ``FatalProviderError`` when
    Gemini blocked the prompt itself, ``RetryableProviderError`` when the reply has no answer
    at all."""
    if not response.candidates:
        feedback = response.prompt_feedback
        reason = feedback.block_reason if feedback is not None else None
        if reason is not None:
            raise FatalProviderError(f"gemini blocked the prompt: {reason}")
        # Neither an answer nor a refusal: not a reply to bill as an empty answer.
        raise malformed(NAME, ValueError("the reply has no candidates"))
    candidate = response.candidates[0]
    content = candidate.content
    parts = content.parts if content is not None and content.parts else []
    for part in parts:
        if part.function_call is not None and part.function_call.name == OUTPUT_FUNCTION:
            return json.dumps(part.function_call.args or {})
    text = "".join(part.text for part in parts if part.text and not part.thought)
    if any(part.function_call is not None for part in parts):
        # What it said beside its calls, handed back as its own words next turn: the pages
        # it searched go in ``ProviderResponse.sources`` instead.
        return text
    links = grounding_links(response)
    return text + ("\n\nSources:\n" + "\n".join(f"- {link}" for link in links) if links else "")


def grounding_links(response: GenerateContentResponse) -> list[str]:
    """The web pages a grounded (searched) answer rests on, as markdown links; none when the
    answer was not grounded."""
    candidates = response.candidates or []
    metadata: GroundingMetadata | None = candidates[0].grounding_metadata if candidates else None
    chunks = metadata.grounding_chunks if metadata is not None else None
    return markdown_links(
        (chunk.web.title, chunk.web.uri)
        for chunk in chunks or ()
        if chunk.web is not None and chunk.web.uri
    )


class GeminiProvider(SdkProvider["Client"]):
    """Calls Gemini with the key ``get_secret`` returns at call time (``GEMINI_API_KEY``, else
    ``GOOGLE_API_KEY``). ``base_url`` is ``AGENTFIRM_GEMINI_BASE_URL`` (None: Google's)."""

    name = NAME
    sdk_module = "google.genai"
    key_names = KEY_NAMES

    def max_web_searches(self, model: str) -> int:
        """Every Gemini model grounds with ``google_search``: one billed search a call for 2.x
        (``MAX_WEB_SEARCHES``), ``QUERY_ALLOWANCE`` queries for the models billed per query."""
        return MAX_WEB_SEARCHES if _PER_PROMPT.match(model) else QUERY_ALLOWANCE

    def _new_client(self, key: str) -> Client:
        import httpx2
        from google.genai import Client, types

        options = types.HttpOptions(
            base_url=self._base_url,
            api_version=API_VERSION,
            retry_options=types.HttpRetryOptions(attempts=1),
            # google-genai switches its async calls to aiohttp whenever aiohttp is importable
            # (slack-bolt brings it); naming an httpx transport keeps one HTTP stack, whose
            # timeout and connection errors ``_send`` maps.
            async_client_args={"transport": httpx2.AsyncHTTPTransport()},
        )
        return Client(api_key=key, vertexai=False, http_options=options)

    async def _send(
        self, request: ProviderRequest, client: Client, key_env: str
    ) -> ProviderResponse:
        import httpx2
        from google.genai import errors

        try:
            response = await client.aio.models.generate_content(
                model=request.model,
                contents=request_contents(request),
                config=request_config(request),
            )
        except errors.APIError as exc:
            raise api_error(exc, key_env) from exc
        except httpx2.TimeoutException as exc:
            raise timed_out(NAME, request.timeout_s) from exc
        except httpx2.TransportError as exc:
            raise connection_failed(NAME, exc) from exc
        except (json.JSONDecodeError, errors.UnknownApiResponseError) as exc:
            raise malformed(NAME, exc) from exc
        try:
            text = text_of(response)
            calls = tool_calls_of(response)
            # The model priced (the one asked for) decides how its searches are counted.
            searches = web_searches_of(response, request.model)
            usage = usage_of(response.usage_metadata, request, text, searches)
        except (AttributeError, TypeError, ValueError) as exc:
            # The SDK builds a 200's reply without checking its shape: one with fields of the
            # wrong kind fails only here, and is as malformed as a body cut short.
            raise malformed(NAME, exc) from exc
        return ProviderResponse(
            text,
            usage,
            response.model_version or request.model,
            calls,
            tuple(grounding_links(response)),
        )

    async def _close_client(self, client: Client) -> None:
        await client.aio.aclose()
