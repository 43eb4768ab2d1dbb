"""What leaves the process: a call's messages with every registered secret scrubbed from their
text, the arguments of their tool calls and the tool results they carry (a page a tool fetched
may quote a key)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

from agentfirm.domain.tools import ToolCall
from agentfirm.router.base import Message

Redact = Callable[[str], str]


def redacted(messages: Sequence[Message], redact: Redact) -> tuple[Message, ...]:
    """``messages`` as they may be sent."""
    return tuple(_message(m, redact) for m in messages)


def _message(message: Message, redact: Redact) -> Message:
    content = redact(message.content)
    if not message.tool_calls and not message.tool_results:
        # The usual message; ``dataclasses.replace`` would cost more than the scrubbing.
        if content == message.content:
            return message
        return dataclasses.replace(message, content=content)
    calls = tuple(_call(c, redact) for c in message.tool_calls)
    results = tuple(dataclasses.replace(r, content=redact(r.content)) for r in message.tool_results)
    return dataclasses.replace(message, content=content, tool_calls=calls, tool_results=results)


def _call(call: ToolCall, redact: Redact) -> ToolCall:
    if call.arguments is None:
        return dataclasses.replace(call, raw_arguments=redact(call.raw_arguments))
    sent = json.dumps(call.arguments, ensure_ascii=False)
    scrubbed = redact(sent)
    if scrubbed == sent:
        return call
    try:
        arguments = json.loads(scrubbed)
    except ValueError:
        arguments = None
    return dataclasses.replace(call, arguments=arguments, raw_arguments=scrubbed)
