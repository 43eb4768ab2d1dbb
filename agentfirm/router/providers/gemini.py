"""``gemini``: the Gemini API through the official SDK (``google.genai.Client(...).aio``).

Structured output is Gemini's JSON mode: ``response_mime_type="application/json"`` with the
caller's schema as ``response_json_schema``. The SDK's retries and automatic continuation are off
(one router attempt is one HTTP request); the API version is pinned to ``v1beta``, where JSON
schemas are served. Web search: a free-text request that allows it (``ProviderRequest.web_search``)
carries the ``google_search`` grounding tool, and the pages the answer is grounded on are appended
to its text; structured requests never search (JSON mode and search do not combine on every
model). A grounded answer is billed a search fee on top of its tokens (see ``web_searches_of``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentfirm.router.base import ProviderRequest, ProviderResponse, Usage
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
    )

NAME = "gemini"
KEY_NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
API_VERSION = "v1beta"
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
MAX_WEB_SEARCHES = 1
"""Billed searches one grounded call may run: Gemini 2.x bills grounding per grounded prompt,
whatever number of queries the model ran for it. (Gemini 3 bills per query, with no cap to
declare: its reservation covers one query, and the ledger clamps a costlier call to it.)"""
_PER_PROMPT = re.compile(r"^(?:models/)?gemini-[12]\.")


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
    if request.output_schema is not None:
        config.response_mime_type = "application/json"
        config.response_json_schema = request.output_schema
    elif request.web_search:
        config.tools = [types.Tool(google_search=types.GoogleSearch())]
    return config


def request_contents(request: ProviderRequest) -> list[dict[str, Any]]:
    return [
        {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
        for m in request.messages
        if m.role != "system"
    ]


def web_searches_of(response: GenerateContentResponse, model: str) -> int:
    """The billed searches behind a reply: none unless its answer was grounded by Google Search
    (web search queries or grounding chunks in the candidate's grounding metadata). Gemini 2.x
    bills grounding per grounded prompt, so a grounded answer is one search however many
    queries it ran; other models (Gemini 3 bills each query) count each query, at least one.
    Priced at list: the free daily allowance is account-wide and invisible here, so a search it
    covered is still booked, and the budget can never be overspent."""
    candidates = response.candidates or []
    metadata = candidates[0].grounding_metadata if candidates else None
    if metadata is None:
        return 0
    queries = len(metadata.web_search_queries or ())
    if not queries and not metadata.grounding_chunks:
        return 0
    return 1 if _PER_PROMPT.match(model) else max(queries, 1)


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
    """The answer's text parts (thought summaries left out). Raises ``FatalProviderError`` when
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
    text = "".join(part.text for part in parts if part.text and not part.thought)
    return text + _grounding_sources(candidate.grounding_metadata)


def _grounding_sources(metadata: GroundingMetadata | None) -> str:
    """The web pages a grounded (searched) answer rests on, as a markdown list; empty when the
    answer was not grounded."""
    chunks = metadata.grounding_chunks if metadata is not None else None
    links = markdown_links(
        (chunk.web.title, chunk.web.uri)
        for chunk in chunks or ()
        if chunk.web is not None and chunk.web.uri
    )
    return "\n\nSources:\n" + "\n".join(f"- {link}" for link in links) if links else ""


class GeminiProvider(SdkProvider["Client"]):
    """Calls Gemini with the key ``get_secret`` returns at call time (``GEMINI_API_KEY``, else
    ``GOOGLE_API_KEY``). ``base_url`` is ``AGENTFIRM_GEMINI_BASE_URL`` (None: Google's)."""

    name = NAME
    sdk_module = "google.genai"
    key_names = KEY_NAMES
    max_web_searches = MAX_WEB_SEARCHES

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
            # The model priced (the one asked for) decides how its searches are counted.
            searches = web_searches_of(response, request.model)
            usage = usage_of(response.usage_metadata, request, text, searches)
        except (AttributeError, TypeError, ValueError) as exc:
            # The SDK builds a 200's reply without checking its shape: one with fields of the
            # wrong kind fails only here, and is as malformed as a body cut short.
            raise malformed(NAME, exc) from exc
        return ProviderResponse(text, usage, response.model_version or request.model)

    async def _close_client(self, client: Client) -> None:
        await client.aio.aclose()
