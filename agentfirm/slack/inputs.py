"""What people type and click, read: a request from a mention, a budget, clarifying answers
from a thread reply, the values of a message's inputs and a modal's private metadata.

Answers: one question takes the whole reply; several take one line each, in order, or
``N: answer`` / ``q2: answer`` for particular ones. Whatever is left unanswered takes its
default, and ``defaults`` alone accepts them all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from agentfirm.money import parse_budget

_LINK = re.compile(r"<(https?://[^|>]+)(?:\|[^>]*)?>")
_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_NUMBERED = re.compile(r"^\s*(?:q)?(\d+)\s*[:.)-]\s*(.*)$", re.IGNORECASE)
_DEFAULTS = {"defaults", "default", "use defaults", "use the defaults"}


def request_text(text: str, bot_user_id: str | None) -> str:
    """A message's text as plain text: the bot's mention removed (every mention when the bot's
    id is unknown), links and Slack's escapes undone."""
    text = _MENTION.sub(lambda m: "" if m[1] == bot_user_id or not bot_user_id else m[0], text)
    text = _LINK.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def parse_usd(text: str | None) -> Decimal | None:
    """A budget typed by a person (see ``money.parse_budget``); empty is ``None``. Raises
    ``BadInput`` for anything else."""
    if text is None or not text.strip():
        return None
    return parse_budget(text)


def input_value(values: Mapping[str, Any], block_id: str, action_id: str) -> str | None:
    """A text input's value from ``state.values`` (a message's or a modal's)."""
    value = (values.get(block_id) or {}).get(action_id) or {}
    text = value.get("value") if isinstance(value, Mapping) else None
    return None if text is None else str(text)


def read_metadata(text: str) -> dict[str, str]:
    """A modal's ``private_metadata`` (``prompts.metadata``); ``{}`` when unreadable."""
    try:
        data = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def parse_answers(text: str, questions: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """``question id -> answer`` for every question (``questions``: ``{id, default}`` rows)."""
    answers = {q["id"]: q.get("default", "") for q in questions}
    reply = text.strip()
    if not questions or reply.lower().rstrip(".!") in _DEFAULTS:
        return answers
    if len(questions) == 1:
        only = _NUMBERED.match(reply)
        answers[questions[0]["id"]] = only[2].strip() if only and only[1] == "1" else reply
        return answers
    by_id = {q["id"].lower(): q["id"] for q in questions}
    loose: list[str] = []
    given: set[str] = set()
    for line in (part.strip() for part in reply.splitlines()):
        if not line:
            continue
        key, sep, rest = line.partition(":")
        numbered = _NUMBERED.match(line)
        if sep and key.strip().lower() in by_id:
            target, answer = by_id[key.strip().lower()], rest.strip()
        elif numbered and 1 <= int(numbered[1]) <= len(questions):
            target, answer = questions[int(numbered[1]) - 1]["id"], numbered[2].strip()
        else:
            loose.append(line)
            continue
        answers[target] = answer
        given.add(target)
    for question, line in zip((q for q in questions if q["id"] not in given), loose, strict=False):
        answers[question["id"]] = line
    return answers
