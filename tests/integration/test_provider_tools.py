"""Each provider's native tool protocol, on its real SDK against its loopback fake: tools offered,
one call, parallel calls, malformed arguments, and results sent back in the next turn."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from agentfirm.domain.tools import ToolCall, ToolResult, ToolSpec
from agentfirm.router.base import Message, Provider, ProviderRequest
from agentfirm.router.providers.anthropic import AnthropicProvider
from agentfirm.router.providers.gemini import GeminiProvider
from agentfirm.router.providers.openai import OpenAIProvider
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.http_fake import running
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.provider_fake import ProviderFake
from tests.fakes.routing import CALL_TIMEOUT_S

pytestmark = pytest.mark.integration

FETCH = ToolSpec(
    name="fetch_url",
    description="Fetch a web page and return its text as Markdown.",
    input_schema={
        "type": "object",
        "properties": {"url": {"type": "string"}},
        "required": ["url"],
    },
)
CLOCK = ToolSpec(
    name="time_now",
    description="The current time in a timezone.",
    input_schema={"type": "object", "properties": {"timezone": {"type": "string"}}},
)
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"headline": {"type": "string"}},
    "required": ["headline"],
}
MESSAGES = (
    Message("system", "You are a market analyst."),
    Message("user", "What do widgets cost? Look it up."),
)


@dataclass(frozen=True)
class Subject:
    name: str
    fake: Callable[[], ProviderFake]
    open: Callable[[ProviderFake], Provider]
    model: str
    args_are_text: bool
    """Whether the protocol carries arguments as a JSON string (which can be malformed)."""


SUBJECTS = [
    Subject(
        "anthropic",
        AnthropicFake,
        lambda f: AnthropicProvider(
            get_secret={"ANTHROPIC_API_KEY": "sk-ant-1"}.get, base_url=f.url
        ),
        "claude-sonnet-4-5",
        args_are_text=False,
    ),
    Subject(
        "openai",
        OpenAIFake,
        lambda f: OpenAIProvider(get_secret={"OPENAI_API_KEY": "sk-1"}.get, base_url=f"{f.url}/v1"),
        "gpt-5-mini",
        args_are_text=True,
    ),
    Subject(
        "openai_compat",
        OpenAIFake,
        lambda f: OpenAIProvider.openai_compat(get_secret={}.get, base_url=f"{f.url}/v1"),
        "llama3.1",
        args_are_text=True,
    ),
    Subject(
        "gemini",
        GeminiFake,
        lambda f: GeminiProvider(get_secret={"GEMINI_API_KEY": "AIza-1"}.get, base_url=f.url),
        "gemini-2.5-flash",
        args_are_text=False,
    ),
]


@pytest.fixture(params=SUBJECTS, ids=[s.name for s in SUBJECTS], name="subject")
def _subject(request: pytest.FixtureRequest) -> Subject:
    subject: Subject = request.param
    return subject


@pytest.fixture(name="fake")
def _fake(subject: Subject) -> Iterator[ProviderFake]:
    with running(subject.fake()) as server:
        yield server


@pytest.fixture(name="provider")
async def _provider(subject: Subject, fake: ProviderFake) -> AsyncIterator[Provider]:
    provider = subject.open(fake)
    yield provider
    await provider.aclose()  # type: ignore[attr-defined]


def _request(subject: Subject, messages: tuple[Message, ...] = MESSAGES) -> ProviderRequest:
    return ProviderRequest(
        model=subject.model,
        messages=messages,
        max_tokens=512,
        tier="execution",
        output_schema=SCHEMA,
        timeout_s=CALL_TIMEOUT_S,
        tools=(FETCH, CLOCK),
    )


def _sent(fake: ProviderFake) -> str:
    [request] = fake.requests
    return json.dumps(request.body)


async def test_one_tool_call_comes_back_with_its_arguments(
    subject: Subject, fake: ProviderFake, provider: Provider
) -> None:
    fake.script(fake.tool_calls(("call_1", "fetch_url", {"url": "http://127.0.0.1/p"})))
    response = await provider.complete(_request(subject))
    [call] = response.tool_calls
    assert (call.id, call.name, call.arguments) == (
        "call_1",
        "fetch_url",
        {"url": "http://127.0.0.1/p"},
    )
    sent = _sent(fake)
    # Both tools were offered with their schemas, in the protocol's own shape.
    assert "fetch_url" in sent
    assert "time_now" in sent
    assert "Fetch a web page" in sent


async def test_parallel_tool_calls_come_back_in_order(
    subject: Subject, fake: ProviderFake, provider: Provider
) -> None:
    fake.script(
        fake.tool_calls(
            ("call_1", "fetch_url", {"url": "http://127.0.0.1/a"}),
            ("call_2", "time_now", {"timezone": "Europe/Paris"}),
        )
    )
    response = await provider.complete(_request(subject))
    assert [(c.id, c.name) for c in response.tool_calls] == [
        ("call_1", "fetch_url"),
        ("call_2", "time_now"),
    ]


async def test_malformed_arguments_are_kept_raw_for_a_repair(
    subject: Subject, fake: ProviderFake, provider: Provider
) -> None:
    fake.script(fake.tool_calls(("call_1", "fetch_url", '{"url": "http://127.0.0.1/')))
    response = await provider.complete(_request(subject))
    [call] = response.tool_calls
    if subject.args_are_text:
        assert call.arguments is None
        assert call.raw_arguments == '{"url": "http://127.0.0.1/'
    else:
        # An object protocol cannot send broken JSON: what it sends the schema refuses.
        assert call.arguments == {"input": '{"url": "http://127.0.0.1/'}


async def test_results_go_back_and_the_answer_is_the_structured_output(
    subject: Subject, fake: ProviderFake, provider: Provider
) -> None:
    call = ToolCall("call_1", "fetch_url", {"url": "http://127.0.0.1/p"}, "", "c2lnLTE=")
    messages = (
        *MESSAGES,
        Message("assistant", "", tool_calls=(call,)),
        Message("tool", "", tool_results=(ToolResult("call_1", "fetch_url", "Widgets cost 42"),)),
    )
    fake.script(fake.structured({"headline": "Widgets cost 42 euros"}))
    response = await provider.complete(_request(subject, messages))
    assert json.loads(response.text) == {"headline": "Widgets cost 42 euros"}
    assert response.tool_calls == ()
    sent = _sent(fake)
    assert "Widgets cost 42" in sent
    assert "call_1" in sent
