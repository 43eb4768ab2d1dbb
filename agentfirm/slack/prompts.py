"""Block Kit for the questions a task asks: one message per approval (clarify, plan, budget,
review, failure, tool), the two modals (a plan's budget, a revision's notes) and the line a prompt
becomes once decided. Pure functions of the approval rows the daemon returns.

Every button carries the approval id as its ``value``; ``ACTIONS`` maps its ``action_id`` to
the decision it takes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentfirm.domain.tools import plan_tool_lines

Blocks = list[dict[str, Any]]

BUDGET_BLOCK = "af_budget"
BUDGET_INPUT = "af_budget_value"
NOTES_BLOCK = "af_notes"
NOTES_INPUT = "af_notes_value"
MODULES_BLOCK = "af_modules"
MODULES_INPUT = "af_modules_value"
BUDGET_MODAL = "af_budget_modal"
REVISE_MODAL = "af_revise_modal"
SECTION_LIMIT = 2900  # Slack refuses section text over 3000 characters
DRAFT_SECTIONS = 3
MAX_QUESTIONS = 10


@dataclass(frozen=True)
class Action:
    """What a button does: decide ``kind``'s approval with ``decision``, or open a modal."""

    kind: str
    decision: str
    opens_modal: str | None = None


ACTIONS: Mapping[str, Action] = {
    "af_clarify_defaults": Action("clarify", "approved"),
    "af_plan_approve": Action("plan", "approved"),
    "af_plan_edit_budget": Action("plan", "approved", opens_modal=BUDGET_MODAL),
    "af_plan_reject": Action("plan", "rejected"),
    "af_budget_add": Action("budget", "approved"),
    "af_budget_abort": Action("budget", "aborted"),
    "af_review_approve": Action("review", "approved"),
    "af_review_revise": Action("review", "revise", opens_modal=REVISE_MODAL),
    "af_review_reject": Action("review", "rejected"),
    "af_failure_retry": Action("failure", "retry"),
    "af_failure_skip": Action("failure", "skip"),
    "af_failure_abort": Action("failure", "aborted"),
    "af_tool_allow": Action("tool", "approved"),
    "af_tool_deny": Action("tool", "rejected"),
}
ACTION_PATTERN = r"^af_(clarify|plan|budget|review|failure|tool)_"


def escape(text: str) -> str:
    """Slack's three control characters, escaped so user text cannot inject mentions/links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def usd(value: Any) -> str:
    amount = float(value or 0)
    return f"${amount:,.4f}" if amount < 100 else f"${amount:,.2f}"


def who(actor: str | None) -> str:
    """``slack:U123`` → a mention; any other actor (``cli:ann``) as it is."""
    if actor and actor.startswith("slack:"):
        return f"<@{actor.removeprefix('slack:')}>"
    return f"`{escape(actor or 'someone')}`"


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def _button(
    action_id: str, label: str, approval_id: str, style: str | None = None
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": approval_id,
    }
    if style:
        button["style"] = style
    return button


def _actions(approval_id: str, *buttons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": f"af_actions_{approval_id}", "elements": list(buttons)}


def _budget_input(initial: Any, label: str) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": BUDGET_INPUT}
    if initial is not None:
        element["initial_value"] = f"{float(initial):.2f}"
    return {
        "type": "input",
        "block_id": BUDGET_BLOCK,
        "optional": True,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }


@dataclass(frozen=True)
class Message:
    text: str
    """The notification and accessibility fallback."""
    blocks: Blocks


def notice(text: str) -> Message:
    """A notice for the task's thread (``agentfirm.domain.notices``)."""
    return Message(text=text, blocks=[_section(f":warning: {text}")])


# ---------------------------------------------------------------------------- prompts
def prompt(approval: Mapping[str, Any]) -> Message:
    """The message asking ``approval`` (a row of ``GET /tasks/ID/approvals``)."""
    builders = {
        "clarify": _clarify,
        "plan": _plan,
        "budget": _budget,
        "review": _review,
        "failure": _failure,
        "module_failed": _failure,
    }
    kind, payload = str(approval.get("kind")), approval.get("payload") or {}
    if kind == "tool":
        return _tool(str(approval["id"]), payload, str(approval.get("task_id") or "?"))
    builder = builders.get(kind, _unknown)
    return builder(str(approval["id"]), payload)


def questions_of(payload: Mapping[str, Any]) -> list[dict[str, str]]:
    """A clarify payload's questions as ``{id, question, default}``."""
    rows = []
    for n, item in enumerate(payload.get("questions") or (), start=1):
        if isinstance(item, Mapping):
            rows.append(
                {
                    "id": str(item.get("id") or f"q{n}"),
                    "question": str(item.get("question") or ""),
                    "default": str(item.get("default") or ""),
                }
            )
    return rows


def _clarify(approval_id: str, payload: Mapping[str, Any]) -> Message:
    questions = questions_of(payload)
    blocks: Blocks = [_section("*A few questions before planning*")]
    for n, q in enumerate(questions[:MAX_QUESTIONS], start=1):
        default = f"\n_default: {escape(q['default'])}_" if q["default"] else ""
        blocks.append(_section(f"*{n}.* {escape(q['question'])}{default}"))
    how = (
        "Reply in this thread with your answer."
        if len(questions) == 1
        else "Reply in this thread with one answer per line, in order (or `2: answer` for "
        "just some); unanswered questions take their default."
    )
    blocks.append(_context(how))
    blocks.append(
        _actions(approval_id, _button("af_clarify_defaults", "Use the defaults", approval_id))
    )
    return Message("A few questions before planning", blocks)


def _plan(approval_id: str, payload: Mapping[str, Any]) -> Message:
    modules = {str(m.get("id")): m for m in payload.get("modules") or () if isinstance(m, Mapping)}
    waves: Sequence[Sequence[str]] = payload.get("waves") or [list(modules)]
    lines = []
    for n, level in enumerate(waves, start=1):
        names = ", ".join(
            f"`{escape(str(m))}` ({modules.get(str(m), {}).get('tier', '?')})" for m in level
        )
        lines.append(f"*Wave {n}:* {names}")
    estimate = payload.get("estimate") or {}
    head = (
        f"*Plan* · persona `{escape(str(payload.get('persona') or '?'))}` · "
        f"{len(modules)} modules in {len(waves)} waves"
    )
    cost = (
        f"Estimate: expected {usd(estimate.get('expected_usd'))}, worst case "
        f"{usd(estimate.get('worst_usd'))} · suggested budget "
        f"{usd(payload.get('suggested_budget_usd'))}"
    )
    uncovered = [u for u in payload.get("uncovered") or () if isinstance(u, Mapping)]
    if uncovered:
        lines.append(
            f"*{len(uncovered)} quality checklist item(s) left uncovered* (--yes would refuse "
            "this plan):"
        )
        lines += [
            f"• {escape(str(u.get('item', '')))} — {escape(str(u.get('why') or 'no reason'))}"
            for u in uncovered
        ]
    lines += [
        (":no_entry: *" if denied else ":warning: ") + escape(line) + ("*" if denied else "")
        for line, denied in plan_tool_lines(payload)
    ]
    return Message(
        f"Plan ready: {len(modules)} modules, expected {usd(estimate.get('expected_usd'))}",
        [
            _section(head + "\n" + "\n".join(lines)),
            _context(cost),
            _budget_input(payload.get("budget_usd"), "Budget ceiling (USD)"),
            _actions(
                approval_id,
                _button("af_plan_approve", "Approve", approval_id, "primary"),
                _button("af_plan_edit_budget", "Edit budget…", approval_id),
                _button("af_plan_reject", "Reject", approval_id, "danger"),
            ),
        ],
    )


def spend_table(rows: Mapping[str, Any], title: str) -> str:
    if not rows:
        return ""
    width = max(len(str(name)) for name in rows)
    body = "\n".join(f"{name!s:<{width}}  {usd(cost):>10}" for name, cost in rows.items())
    return f"*{title}*\n```{escape(body)}```"


def _budget(approval_id: str, payload: Mapping[str, Any]) -> Message:
    head = (
        f"*Budget reached* · spent {usd(payload.get('spent_usd'))} of "
        f"{usd(payload.get('ceiling_usd'))}; the next call needs "
        f"{usd(payload.get('needed_usd'))}. The work waits: add budget or abort."
    )
    tables = [
        spend_table(payload.get("by_module") or {}, "Spend by module"),
        spend_table(payload.get("by_provider") or {}, "Spend by provider"),
    ]
    return Message(
        f"Budget reached: spent {usd(payload.get('spent_usd'))}",
        [
            _section(head),
            *[_section(t) for t in tables if t],
            _budget_input(payload.get("suggested_ceiling_usd"), "New ceiling (USD)"),
            _actions(
                approval_id,
                _button("af_budget_add", "Add budget", approval_id, "primary"),
                _button("af_budget_abort", "Abort", approval_id, "danger"),
            ),
        ],
    )


def _review(approval_id: str, payload: Mapping[str, Any]) -> Message:
    draft = str(payload.get("draft_markdown") or "")
    chunks = [draft[i : i + SECTION_LIMIT] for i in range(0, len(draft), SECTION_LIMIT)]
    shown = chunks[:DRAFT_SECTIONS]
    left = len(draft) - sum(len(c) for c in shown)
    blocks: Blocks = [_section("*The draft is ready for review*")]
    blocks += [_section(escape(chunk)) for chunk in shown]
    if left > 0:
        blocks.append(_context(f"… {left:,} more characters in the full draft"))
    blocks.append(
        _actions(
            approval_id,
            _button("af_review_approve", "Approve", approval_id, "primary"),
            _button("af_review_revise", "Revise…", approval_id),
            _button("af_review_reject", "Reject", approval_id, "danger"),
        )
    )
    return Message("The draft is ready for review", blocks)


def _failure(approval_id: str, payload: Mapping[str, Any]) -> Message:
    module = escape(str(payload.get("module_id") or "?"))
    attempts = payload.get("attempts")
    tries = f" after {attempts} attempts" if attempts else ""
    error = escape(str(payload.get("error") or "unknown error"))
    return Message(
        f"Module {module} failed",
        [
            _section(f"*Module `{module}` failed*{tries}:\n```{error[:2000]}```"),
            _actions(
                approval_id,
                _button("af_failure_retry", "Retry", approval_id, "primary"),
                _button("af_failure_skip", "Skip it", approval_id),
                _button("af_failure_abort", "Abort the task", approval_id, "danger"),
            ),
        ],
    )


def transcript_command(task_id: str, module_id: str | None = None) -> str:
    """The command that shows a task's (or one module's) model turns and tool calls."""
    module = f" --module {module_id}" if module_id else ""
    return f"`agentfirm tasks transcript {escape(task_id)}{escape(module)}`"


def _tool(approval_id: str, payload: Mapping[str, Any], task_id: str) -> Message:
    module = escape(str(payload.get("module_id") or "?"))
    tool = escape(str(payload.get("origin") or payload.get("tool") or "?"))
    arguments = escape(str(payload.get("arguments") or "")[:1500])
    return Message(
        f"Module {module} asks to run {tool}",
        [
            _section(
                f"*Module `{module}` asks to run `{tool}`*, which may change things outside "
                f"the task:\n```{arguments}```"
            ),
            _context(
                "What the module did so far: "
                + transcript_command(task_id, str(payload.get("module_id") or "") or None)
            ),
            _actions(
                approval_id,
                _button("af_tool_allow", "Allow", approval_id, "primary"),
                _button("af_tool_deny", "Deny", approval_id, "danger"),
            ),
        ],
    )


def _unknown(approval_id: str, payload: Mapping[str, Any]) -> Message:
    question = escape(str(payload.get("question") or "A question awaits an answer."))
    return Message(question, [_section(question), _context("Answer it from the terminal.")])


# ---------------------------------------------------------------------------- decided
def decided(kind: str, payload: Mapping[str, Any]) -> Message:
    """What a prompt becomes once decided: the ``approval.decided`` event's payload, as a
    line without buttons (so nobody clicks a stale question)."""
    decision = str(payload.get("decision") or "decided")
    words = {
        "approved": "approved",
        "rejected": "rejected",
        "aborted": "aborted",
        "revise": "sent back for revision",
        "retry": "retried",
        "skip": "skipped",
    }
    marks = {"approved": "✅", "revise": "✏️", "retry": "🔁", "skip": "⏭️"}
    text = f"{marks.get(decision, '⛔')} *{kind.capitalize()}* {words.get(decision, decision)}"
    text += f" by {who(payload.get('actor'))}"
    if payload.get("budget_usd") is not None:
        text += f" · budget {usd(payload['budget_usd'])}"
    if payload.get("modules"):
        text += " · re-run " + ", ".join(f"`{escape(str(m))}`" for m in payload["modules"])
    if payload.get("notes"):
        text += f"\n> {escape(str(payload['notes']))}"
    return Message(text, [_section(text)])


# ---------------------------------------------------------------------------- modals
def metadata(**fields: str) -> str:
    return json.dumps(fields, separators=(",", ":"))


def budget_modal(approval: Mapping[str, Any], private_metadata: str) -> dict[str, Any]:
    payload = approval.get("payload") or {}
    return {
        "type": "modal",
        "callback_id": BUDGET_MODAL,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": "Approve with budget"},
        "submit": {"type": "plain_text", "text": "Approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _context(
                f"Suggested {usd(payload.get('suggested_budget_usd'))}; worst case "
                f"{usd((payload.get('estimate') or {}).get('worst_usd'))}."
            ),
            {**_budget_input(payload.get("budget_usd"), "Budget ceiling (USD)"), "optional": False},
        ],
    }


def revise_modal(approval: Mapping[str, Any], private_metadata: str) -> dict[str, Any]:
    modules = [str(m) for m in (approval.get("payload") or {}).get("modules") or ()][:100]
    blocks: Blocks = [
        {
            "type": "input",
            "block_id": NOTES_BLOCK,
            "label": {"type": "plain_text", "text": "What should change?"},
            "element": {
                "type": "plain_text_input",
                "action_id": NOTES_INPUT,
                "multiline": True,
                "max_length": 3000,
            },
        }
    ]
    if modules:
        blocks.append(
            {
                "type": "input",
                "block_id": MODULES_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Modules to re-run (default: all)"},
                "element": {
                    "type": "multi_static_select",
                    "action_id": MODULES_INPUT,
                    "options": [
                        {"text": {"type": "plain_text", "text": m[:75]}, "value": m}
                        for m in modules
                    ],
                },
            }
        )
    return {
        "type": "modal",
        "callback_id": REVISE_MODAL,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": "Revise the draft"},
        "submit": {"type": "plain_text", "text": "Revise"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }
