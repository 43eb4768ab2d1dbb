"""The Slack front end's pure parts: answers from a reply, replay protection, the edit
coalescer on a manual clock, who may act, the configuration check, and the Block Kit built."""

from __future__ import annotations

import asyncio
import itertools
import json
from decimal import Decimal
from pathlib import Path

import pytest
from keyring.backends import fail

from agentfirm.errors import BadInput
from agentfirm.secrets import Redactor, SecretStore
from agentfirm.settings import load_settings
from agentfirm.slack.access import AccessPolicy
from agentfirm.slack.config import SlackConfig, load_slack_config
from agentfirm.slack.inputs import parse_answers, parse_usd, request_text
from agentfirm.slack.progress import Progress, final_summary
from agentfirm.slack.prompts import ACTIONS, BUDGET_BLOCK, SECTION_LIMIT, decided, prompt
from agentfirm.slack.replay import ReplayGuard, request_keys
from agentfirm.slack.throttle import Coalescer
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, ManualClock

QUESTIONS = [
    {"id": "q1", "question": "Which market?", "default": "EU"},
    {"id": "q2", "question": "Which years?", "default": "2020-2024"},
    {"id": "q3", "question": "Depth?", "default": "overview"},
]


# ------------------------------------------------------------------ answers
def test_a_single_question_takes_the_whole_reply() -> None:
    answers = parse_answers("The US market, mostly B2B", QUESTIONS[:1])

    assert answers == {"q1": "The US market, mostly B2B"}


def test_lines_answer_questions_in_order_and_the_rest_take_defaults() -> None:
    assert parse_answers("US\n2015-2020", QUESTIONS) == {
        "q1": "US",
        "q2": "2015-2020",
        "q3": "overview",
    }


def test_numbered_and_named_lines_answer_those_questions_only() -> None:
    assert parse_answers("3: deep dive\nq1: Japan", QUESTIONS) == {
        "q1": "Japan",
        "q2": "2020-2024",
        "q3": "deep dive",
    }


def test_defaults_accepts_every_default() -> None:
    assert parse_answers("defaults", QUESTIONS) == {q["id"]: q["default"] for q in QUESTIONS}


# ------------------------------------------------------------------ replay
def test_a_request_is_handled_once_within_the_ttl() -> None:
    now = [0.0]
    guard = ReplayGuard(ttl=600, clock=lambda: now[0])
    keys = request_keys({"event_id": "Ev1"}, {"x-slack-signature": ["v0=abc"]})

    assert guard.first_time(keys)
    assert not guard.first_time(keys)
    now[0] = 601.0
    assert guard.first_time(keys)


def test_a_slack_retry_of_an_event_is_dropped_though_its_signature_differs() -> None:
    guard = ReplayGuard()

    assert guard.first_time(request_keys({"event_id": "Ev9"}, {"x-slack-signature": ["v0=1"]}))
    assert not guard.first_time(request_keys({"event_id": "Ev9"}, {"x-slack-signature": ["v0=2"]}))


def test_the_guard_forgets_the_oldest_keys_beyond_its_size() -> None:
    guard = ReplayGuard(max_keys=3)
    for n in range(5):
        assert guard.first_time([f"k{n}"])

    assert guard.first_time(["k0"])  # forgotten
    assert not guard.first_time(["k4"])


# ------------------------------------------------------------------ the edit coalescer
async def test_a_burst_is_sent_at_most_once_per_interval_ending_on_the_latest_value() -> None:
    clock = ManualClock()
    sent: list[tuple[float, int]] = []

    async def send(value: int) -> None:
        sent.append((clock.now(), value))

    coalescer: Coalescer[int] = Coalescer(send, interval=1.0, clock=clock)
    start = clock.now()
    for n in range(1, 501):  # 500 values, 10 ms apart: 5 seconds
        await clock.advance(0.01)
        coalescer.push(n)
        await asyncio.sleep(0)
    await clock.advance(1.0)
    await coalescer.flush()

    times = [at for at, _ in sent]
    assert sent[-1][1] == 500
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in itertools.pairwise(times))
    assert 5 <= len(sent) <= 7  # one at once, then one per second of the 5-second burst
    assert times[0] == pytest.approx(start + 0.01)


async def test_a_failed_send_does_not_stop_later_ones() -> None:
    clock = ManualClock()
    sent: list[str] = []

    async def send(value: str) -> None:
        if value == "bad":
            raise OSError("connection reset")
        sent.append(value)

    coalescer: Coalescer[str] = Coalescer(send, interval=1.0, clock=clock)
    coalescer.push("bad")
    await coalescer.flush()
    await clock.advance(2.0)
    coalescer.push("good")
    await coalescer.flush()

    assert sent == ["good"]


# ------------------------------------------------------------------ who may act
def test_only_listed_users_may_act_and_only_in_listed_channels() -> None:
    policy = AccessPolicy.of({"U1"}, {"C1"})

    assert policy.refusal("U1", "C1") is None
    assert "allow-list" in (policy.refusal("U2", "C1") or "")
    assert "channel" in (policy.refusal("U1", "C2") or "")
    assert AccessPolicy.of({"*"}).refusal("U9", "C9") is None


# ------------------------------------------------------------------ configuration
def _config(
    tmp_path: Path, env: dict[str, str], secrets: dict[str, str], mode: str | None = None
) -> SlackConfig:
    settings = load_settings({"AGENTFIRM_HOME": str(tmp_path), **env}, cwd=tmp_path)
    store = SecretStore(Redactor(), env=secrets, backend=fail.Keyring())
    return load_slack_config(settings, store, mode=mode)


def test_missing_tokens_and_allow_list_are_reported_together_on_one_line(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as caught:
        _config(tmp_path, {}, {})

    message = str(caught.value)
    assert "\n" not in message
    assert "SLACK_BOT_TOKEN and SLACK_APP_TOKEN" in message
    assert "AGENTFIRM_SLACK_ALLOWED_USERS" in message


def test_http_mode_needs_the_signing_secret_not_the_app_token(tmp_path: Path) -> None:
    env = {"AGENTFIRM_SLACK_ALLOWED_USERS": "U1,U2", "AGENTFIRM_SLACK_PORT": "8123"}
    secrets = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET}

    config = _config(tmp_path, env, secrets, mode="http")

    assert config.mode == "http"
    assert config.port == 8123
    assert config.allowed_users == {"U1", "U2"}
    assert BOT_TOKEN not in repr(config)
    assert SIGNING_SECRET not in repr(config)
    with pytest.raises(BadInput, match="SLACK_SIGNING_SECRET"):
        _config(
            tmp_path, env, {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN}, mode="http"
        )


def test_an_unknown_mode_is_bad_input(tmp_path: Path) -> None:
    secrets = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN}
    with pytest.raises(BadInput, match="--mode 'websocket' is not socket or http"):
        _config(tmp_path, {"AGENTFIRM_SLACK_ALLOWED_USERS": "U1"}, secrets, mode="websocket")


# ------------------------------------------------------------------ text in, Block Kit out
def test_a_mention_becomes_the_request_text() -> None:
    text = "<@UBOT> market sizing &amp; pricing for <https://acme.example|acme> &lt;EU&gt;"

    assert request_text(text, "UBOT") == "market sizing & pricing for https://acme.example <EU>"


def test_budgets_typed_by_people_parse_or_are_refused() -> None:
    assert parse_usd("$2.50") == Decimal("2.50")
    assert parse_usd("  ") is None
    with pytest.raises(BadInput, match="positive amount"):
        parse_usd("-1")


def _buttons(blocks: list[dict[str, object]]) -> list[tuple[str, str]]:
    return [
        (str(e["action_id"]), str(e["value"]))
        for b in blocks
        if b["type"] == "actions"
        for e in b["elements"]  # type: ignore[attr-defined]
    ]


def test_the_plan_prompt_shows_waves_estimate_and_a_budget_field_with_three_choices() -> None:
    approval = {
        "id": "ap_1",
        "kind": "plan",
        "payload": {
            "persona": "market_research",
            "modules": [
                {"id": "scan", "tier": "execution"},
                {"id": "size", "tier": "reasoning"},
            ],
            "waves": [["scan"], ["size"]],
            "estimate": {"expected_usd": 0.0123, "worst_usd": 0.05},
            "suggested_budget_usd": 0.1,
            "budget_usd": 5.0,
        },
    }

    message = prompt(approval)
    text = json.dumps(message.blocks)

    assert "*Wave 1:* `scan` (execution)" in text
    assert "*Wave 2:* `size` (reasoning)" in text
    assert "$0.0123" in text
    assert "$0.0500" in text
    field = next(b for b in message.blocks if b.get("block_id") == BUDGET_BLOCK)
    assert field["element"]["initial_value"] == "5.00"
    assert _buttons(message.blocks) == [
        ("af_plan_approve", "ap_1"),
        ("af_plan_edit_budget", "ap_1"),
        ("af_plan_reject", "ap_1"),
    ]
    assert all(action in ACTIONS for action, _ in _buttons(message.blocks))


def test_a_long_draft_fits_slacks_block_limits() -> None:
    approval = {"id": "ap_2", "kind": "review", "payload": {"draft_markdown": "x" * 20_000}}

    blocks = prompt(approval).blocks

    assert all(len(b.get("text", {}).get("text", "")) <= SECTION_LIMIT + 1 for b in blocks)
    assert "more characters" in json.dumps(blocks)
    assert [a for a, _ in _buttons(blocks)] == [
        "af_review_approve",
        "af_review_revise",
        "af_review_reject",
    ]


def test_user_text_cannot_inject_mentions_into_a_prompt() -> None:
    approval = {
        "id": "ap_3",
        "kind": "failure",
        "payload": {"module_id": "scan", "error": "<!channel> boom", "attempts": 3},
    }

    text = json.dumps(prompt(approval).blocks)

    assert "<!channel>" not in text
    assert "&lt;!channel&gt;" in text


def test_a_decided_prompt_names_the_slack_user_and_has_no_buttons() -> None:
    message = decided("plan", {"decision": "approved", "actor": "slack:U1", "budget_usd": 3})

    assert "approved by <@U1>" in message.text
    assert "$3.0000" in message.text
    assert not _buttons(message.blocks)


def test_progress_folds_events_into_one_message() -> None:
    progress = Progress("t_1", persona="market_research")
    progress.plan({"waves": [["scan"], ["size"]], "budget_usd": 2})
    for event in [
        {"type": "task.transition", "payload": {"to": "executing"}},
        {"type": "module.started", "module_id": "scan", "payload": {}},
        {"type": "module.completed", "module_id": "scan", "payload": {"cost_usd": 0.01}},
        {"type": "cost.updated", "module_id": "scan", "payload": {"spent_usd": 0.01}},
        {"type": "module.started", "module_id": "size", "payload": {}},
    ]:
        progress.apply(event)

    text = progress.render().text

    assert "*executing*" in text
    assert "✅ `scan` $0.0100" in text
    assert "⏳ `size`" in text
    assert "Spent $0.0100 of $2.0000 · 1/2 modules done" in text


def test_progress_shows_the_colab_link_and_the_secrets_to_set_until_the_run_ends() -> None:
    url = "https://colab.research.google.com/github/acme/agentfirm-t_1/blob/main/notebook.ipynb"
    progress = Progress("t_1")
    progress.apply({"type": "task.transition", "payload": {"to": "executing"}})
    progress.apply(
        {
            "type": "runner.launched",
            "payload": {
                "run_id": "run_1",
                "runner": "colab",
                "url": url,
                "secrets": ["GITHUB_TOKEN", "ANTHROPIC_API_KEY"],
            },
        }
    )

    text = progress.render().text

    assert f"<{url}|Open the notebook in Colab>" in text
    assert "`GITHUB_TOKEN`, `ANTHROPIC_API_KEY`" in text
    progress.apply({"type": "runner.finished", "payload": {"run_id": "run_1", "outcome": "ok"}})
    assert url not in progress.render().text


def test_the_final_summary_has_the_cost_table_and_the_deliverable() -> None:
    detail = {
        "task_id": "t_1",
        "status": "completed",
        "deliverable_path": "/data/repos/t_1/deliverable.md",
        "repo_path": "/data/repos/t_1",
    }
    costs = {
        "total_usd": 0.02,
        "simulated": True,
        "by_module": {"scan": 0.01, "size": 0.01},
        "by_tier": {"execution": 0.02},
        "by_provider": {"offline": 0.02},
    }

    message = final_summary(detail, costs, {"commit": "abcdef1234567890", "quality": {}})
    text = json.dumps(message.blocks)

    assert "Task completed" in text
    assert "`/data/repos/t_1/deliverable.md`" in text
    assert "@ `abcdef123456`" in text
    assert "Total cost $0.0200" in text
    assert "simulated" in text
    assert "By module" in text
    assert "scan" in text
    assert "By provider" in text
    assert "Model turns and tool calls: `agentfirm tasks transcript t_1`" in text
