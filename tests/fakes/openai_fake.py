"""OpenAI Chat Completions (``POST /v1/chat/completions``) on loopback; also what an
OpenAI-compatible server (Ollama, vLLM, llama.cpp) speaks."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_fake import Recorded
from tests.fakes.provider_fake import ProviderFake

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class OpenAIUsage:
    """As OpenAI reports it: ``prompt_tokens`` INCLUDES ``cached_tokens``."""

    prompt_tokens: int = 28
    completion_tokens: int = 9
    cached_tokens: int = 0


class OpenAIFake(ProviderFake):
    route = re.compile(r"(/v1)?/chat/completions")

    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        tokens = usage if isinstance(usage, OpenAIUsage) else OpenAIUsage()
        content = json.dumps(data) if data is not None else text
        return {
            "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
            "object": "chat.completion",
            "created": 1741570283,
            "model": self.model_of(request),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": content,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": tokens.prompt_tokens,
                "completion_tokens": tokens.completion_tokens,
                "total_tokens": tokens.prompt_tokens + tokens.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": tokens.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fc9f1d7035",
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind, code = _ERROR_TYPES.get(status, ("server_error", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}
