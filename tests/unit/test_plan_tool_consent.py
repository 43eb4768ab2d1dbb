"""The plan question says what becomes of each tool the plan may call that may change things
(issue 18): under ``--yes`` such a tool is denied unless ``--allow-tool`` names it, and the plan
was approved without a word of it; at a terminal it is asked about before each call. One wording
(``domain.tools.consent_line``) in the terminal, the TUI and Slack."""

from __future__ import annotations

import io
import json

from agentfirm.tui.modals.plan import tools_text
from rich.console import Console

from agentfirm.cli.output import plan_warnings, print_plan_payload
from agentfirm.domain.tools import consent_line, plan_tool_lines, tool_consents
from agentfirm.slack.prompts import prompt

CHANGING = {
    "git": [("git__commit", "mcp:git/commit"), ("git__push", "mcp:git/push")],
    "notes": [("notes__write_note", "mcp:notes/write_note")],
}
MODULES = [
    ("research", ["web_search", "fetch_url", "mcp:notes"]),
    ("release", ["mcp:git/commit", "mcp:notes/*"]),
    ("reading", ["mcp:git/log"]),  # a read-only tool of a server with changing ones
]
DENIED_NOTE = (
    "mcp:notes/write_note (used by research, release) may change things and will be denied: "
    "--yes without --allow-tool mcp:notes/write_note; those modules go on without it"
)


def test_under_yes_each_changing_tool_is_denied_unless_allowed() -> None:
    consents = tool_consents(MODULES, CHANGING, decides_alone=True, allowed=["mcp:git/*"])

    assert [(c.origin, c.modules, c.way) for c in consents] == [
        ("mcp:notes/write_note", ("research", "release"), "denied"),
        ("mcp:git/commit", ("release",), "allowed"),
    ]
    assert consent_line(consents[0].to_json()) == DENIED_NOTE


def test_at_a_terminal_each_is_asked_before_each_call() -> None:
    consents = tool_consents(MODULES, CHANGING, decides_alone=False)

    assert {c.way for c in consents} == {"asks"}
    assert consent_line(consents[1].to_json()) == (
        "mcp:git/commit (used by release) may change things: you are asked before each call"
    )


def test_a_plan_without_such_tools_says_nothing() -> None:
    assert tool_consents([("m", ["web_search", "mcp:git/log"])], CHANGING, decides_alone=True) == []
    assert plan_tool_lines({"tools": []}) == []


def _payload() -> dict[str, object]:
    consents = tool_consents(MODULES, CHANGING, decides_alone=True)
    return {
        "question": "Approve the plan?",
        "persona": "p",
        "modules": [{"id": m, "tier": "execution", "depends_on": []} for m, _ in MODULES],
        "waves": [[m for m, _ in MODULES]],
        "estimate": {"expected_usd": 0.01, "worst_usd": 0.02, "by_module": {}},
        "budget_usd": 1.0,
        "uncovered": [],
        "tools": [c.to_json() for c in consents],
    }


def test_the_terminal_the_tui_and_slack_say_it_in_the_same_words() -> None:
    payload = _payload()
    out = io.StringIO()
    print_plan_payload(Console(file=out, width=400, no_color=True), payload)
    slack = prompt({"id": "ap_1", "kind": "plan", "task_id": "t_1", "payload": payload})

    assert f"! {DENIED_NOTE}" in out.getvalue()
    assert DENIED_NOTE in tools_text(payload).plain
    assert DENIED_NOTE in json.dumps(slack.blocks, ensure_ascii=False)
    # --json: on stderr before the run, the denied ones only
    assert [w for w in plan_warnings(payload) if "will be denied" in w] == [
        f"  [red]![/] {DENIED_NOTE}",
        "  [red]![/] mcp:git/commit (used by release) may change things and will be denied: "
        "--yes without --allow-tool mcp:git/commit; those modules go on without it",
    ]
