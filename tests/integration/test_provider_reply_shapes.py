"""A 200 whose body is JSON but not a reply (its fields missing or of the wrong kind) is a
malformed response — retryable, like a body cut short — for every provider: the SDKs build such
replies without checking their shape, so it must not escape as a ``TypeError`` that stops the
module, nor pass as an empty answer billed at estimated usage."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentfirm.router.base import Message, Provider, ProviderRequest
from agentfirm.router.errors import RetryableProviderError
from agentfirm.router.providers.anthropic import AnthropicProvider
from agentfirm.router.providers.gemini import GeminiProvider
from agentfirm.router.providers.openai import OpenAIProvider
from tests.fakes.anthropic_fake import AnthropicFake
from tests.fakes.gemini_fake import GeminiFake
from tests.fakes.http_fake import Reply, running
from tests.fakes.openai_fake import OpenAIFake
from tests.fakes.provider_fake import ProviderFake

pytestmark = pytest.mark.integration

KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-shape",
    "OPENAI_API_KEY": "sk-shape",
    "GEMINI_API_KEY": "AIza-s",
}
Open = Callable[[str], Provider]
PROVIDERS: dict[str, tuple[Callable[[], ProviderFake], Open, str]] = {
    "anthropic": (
        AnthropicFake,
        lambda url: AnthropicProvider(get_secret=KEYS.get, base_url=url),
        "claude-sonnet-4-6",
    ),
    "openai": (
        OpenAIFake,
        lambda url: OpenAIProvider(get_secret=KEYS.get, base_url=url),
        "gpt-4o",
    ),
    "gemini": (
        GeminiFake,
        lambda url: GeminiProvider(get_secret=KEYS.get, base_url=url),
        "gemini-2.5-flash",
    ),
}
NOT_A_REPLY: list[Any] = [
    {},
    {"content": None, "choices": None, "candidates": None},
    {"choices": [{}]},
    [],
    "a bare string",
]


@pytest.fixture(params=sorted(PROVIDERS))
def served(request: pytest.FixtureRequest) -> Iterator[tuple[ProviderFake, Open, str]]:
    start, open_provider, model = PROVIDERS[request.param]
    with running(start()) as fake:
        yield fake, open_provider, model


@pytest.mark.parametrize("body", NOT_A_REPLY, ids=repr)
async def test_a_body_that_is_not_a_reply_is_a_retryable_malformed_response(
    served: tuple[ProviderFake, Open, str], body: Any
) -> None:
    fake, open_provider, model = served
    provider = open_provider(fake.url)
    fake.script(Reply(200, body))
    try:
        with pytest.raises(RetryableProviderError, match="malformed response"):
            await provider.complete(
                ProviderRequest(model, (Message("user", "Hello?"),), 64, "utility", timeout_s=30)
            )
        # The same provider serves the next, well-formed reply.
        reply = await provider.complete(
            ProviderRequest(model, (Message("user", "Hello?"),), 64, "utility", timeout_s=30)
        )
        assert reply.text
    finally:
        closer = getattr(provider, "aclose", None)
        if closer is not None:
            await closer()
