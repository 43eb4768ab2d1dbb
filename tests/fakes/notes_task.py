"""A task whose one module asks for a tool that changes things: the world the consent tests of
every front end share (the CLI, the TUI, Slack).

The persona ``notes`` has one module, ``notes``, allowed ``mcp:notes`` (``mcp_notes_server.py``:
``write_note`` appends to a file and says it may change things). Its tier, ``execution``, is
served by the OpenAI fake, which asks for ``notes__write_note`` on the module's first turn and
answers with research notes once a tool result is in the chat; planning, stitching and the
quality check are offline. So the module pauses on a ``tool`` question, and the note is written
only when someone allows it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.fakes.http_fake import Recorded, Reply
from tests.fakes.openai_fake import OpenAIFake

SERVER = Path(__file__).with_name("mcp_notes_server.py")
REQUEST = "Note the KW-9 heat pump price for the Lyon depot"
NOTE = "KW-9 is EUR 1,180"
TOOL = "notes__write_note"
ORIGIN = "mcp:notes/write_note"
NOTES = {
    "summary": "The KW-9 costs EUR 1,180.",
    "findings": [{"claim": NOTE, "evidence": "the price list", "source": "price list"}],
    "open_questions": [],
}
PERSONA = {
    "name": "Notes",
    "description": "Writes a price down in the shared notebook.",
    "classification_keywords": ["kw-9 heat pump price"],
    "modules": [
        {
            "id": "notes",
            "title": "Price note",
            "tier": "execution",
            "output_type": "research_notes",
            "brief": "Write the KW-9 price in the shared notebook, then report it.",
            "tools": ["mcp:notes"],
            "max_turns": 3,
        }
    ],
    "quality_checklist": ["The price is stated."],
}


class NotesModel:
    """The OpenAI fake's answers: the tool call while the module has no tool result yet, the
    notes after; ``asked`` counts the tool calls it asked for."""

    def __init__(self, fake: OpenAIFake) -> None:
        self.fake = fake
        self.asked = 0

    def __call__(self, request: Recorded) -> Reply:
        body: dict[str, Any] = request.body
        offered = [t["function"]["name"] for t in body.get("tools") or ()]
        answered = any(m.get("role") == "tool" for m in body.get("messages", ()))
        if TOOL in offered and not answered:
            self.asked += 1
            return self.fake.tool_calls(("call_1", TOOL, {"text": NOTE}))(request)
        return self.fake.structured(NOTES)(request)


def write_world(home: Path, notebook: Path, server_env: dict[str, str] | None = None) -> Path:
    """The persona under ``home``'s config and an ``mcp.json`` naming the notes server (which
    writes to ``notebook``, started with ``server_env``); returns the ``mcp.json``."""
    personas = home / "config" / "personas"
    personas.mkdir(parents=True, exist_ok=True)
    (personas / "notes.yaml").write_text(json.dumps(PERSONA, indent=2), encoding="utf-8")
    server: dict[str, Any] = {"command": sys.executable, "args": [str(SERVER), str(notebook)]}
    if server_env:
        server["env"] = server_env
    mcp = home / "mcp.json"
    mcp.write_text(json.dumps({"mcpServers": {"notes": server}}), encoding="utf-8")
    return mcp


def world_env(
    home: Path, notebook: Path, model_url: str, server_env: dict[str, str] | None = None
) -> dict[str, str]:
    """Settings for a task in this world: the execution tier on the OpenAI fake at
    ``model_url``, the rest offline, no research round or quality revision; the notes server
    started with ``server_env``."""
    offline = json.dumps(["offline:gpt-5-mini"])
    return {
        "AGENTFIRM_MCP_CONFIG": str(write_world(home, notebook, server_env)),
        "OPENAI_API_KEY": "sk-test-notes",
        "OPENAI_BASE_URL": f"{model_url}/v1",
        "AGENTFIRM_TIERS__EXECUTION": json.dumps(["openai:gpt-5-mini"]),
        "AGENTFIRM_TIERS__REASONING": offline,
        "AGENTFIRM_TIERS__UTILITY": offline,
        "AGENTFIRM_RESEARCH_ESCALATIONS": "0",
        "AGENTFIRM_QUALITY_REVISION": "false",
    }
