"""The TUI's fixed data set on the fake daemon (``tests.fakes.daemon``), for snapshots and the
bench: every time, id and amount is a constant, so a screen draws the same way on every run.
``push`` feeds live events."""

from __future__ import annotations

from typing import Any

from tests.fakes.daemon import FakeDaemon
from tests.tui.fixed_parts import (
    DRAFT,
    MODEL,
    MODULE_COST,
    NOW,
    PATENT_MODULES,
    PATENT_REQUEST,
    PATENT_WAVES,
    EventScript,
    _approval,
    _event,
    _module_row,
    _plan_payload,
    at,
)


class FakeSource(FakeDaemon):
    """The fake daemon with tasks in every interesting state, with their events, approvals and
    costs; a submission answers with ``t_plan``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = self.task_rows
        self.decisions = self.decided
        self.submit_to = "t_plan"
        self.fields = frozenset(
            {"request", "persona", "budget_usd", "offline", "attachments", "runner", "actor"}
        )
        self._build()

    # ------------------------------------------------------------------ the data
    def _task(
        self,
        task_id: str,
        status: str,
        request: str,
        persona: str | None,
        budget: float,
        cost: float,
        created_ago: float,
        modules: list[dict[str, Any]] | None = None,
    ) -> None:
        self.rows.append(
            {
                "task_id": task_id,
                "status": status,
                "persona": persona,
                "request": request,
                "budget_usd": budget,
                "cost_usd": cost,
                "created_at": at(created_ago),
            }
        )
        self.details[task_id] = {
            "request": request,
            "status": status,
            "persona": persona,
            "repo_path": None,
            "deliverable_path": None,
            "created_at": at(created_ago),
            "updated_at": at(10),
            "task_id": task_id,
            "budget_usd": budget,
            "cost_usd": cost,
            "modules": modules or [],
            "transitions": [],
        }
        self.event_lists.setdefault(task_id, [])
        self.approval_rows.setdefault(task_id, [])
        self.cost_rows[task_id] = self._costs_for(modules or [])

    @staticmethod
    def _costs_for(modules: list[dict[str, Any]]) -> dict[str, Any]:
        done = [m for m in modules if m["status"] == "done"]
        by_module = {"_clarify": 0.001826, **{m["id"]: m["cost_usd"] for m in done}}
        by_tier: dict[str, float] = {"utility": 0.001826}
        for m in done:
            by_tier[m["tier"]] = round(by_tier.get(m["tier"], 0.0) + m["cost_usd"], 6)
        total = round(sum(by_module.values()), 6)
        calls = [
            {
                "call_id": f"call_{name}",
                "module_id": name,
                "tier": "utility"
                if name == "_clarify"
                else next(m["tier"] for m in done if m["id"] == name),
                "provider": "offline",
                "model": "claude-haiku-4-5",
                "input_tokens": 600,
                "cached_input_tokens": 0,
                "output_tokens": 1200,
                "cost_usd": cost,
                "latency_ms": 0,
                "outcome": "ok",
                "simulated": True,
                "at": at(100),
            }
            for name, cost in by_module.items()
        ]
        return {
            "total_usd": total,
            "simulated": True,
            "by_module": by_module,
            "by_tier": by_tier,
            "by_provider": {"offline": total},
            "calls": calls,
        }

    def _build(self) -> None:
        mods = PATENT_MODULES
        # t_exec: executing, wave 1 done, claim chart running, the rest pending.
        rows = [
            _module_row(mods[0], 1, "done", 300, attempts=2),
            _module_row(mods[1], 1, "done", 300, took=9),
            _module_row(mods[2], 1, "done", 300, took=8),
            _module_row(mods[3], 2, "running", 42),
            *(_module_row(m, w, "pending") for m, w in zip(mods[4:], (3, 4, 5), strict=True)),
        ]
        spent = round(0.001826 + sum(r["cost_usd"] for r in rows), 6)
        self._task("t_exec", "executing", PATENT_REQUEST, "patent_research", 3.0, spent, 420, rows)
        script = EventScript("t_exec", 400)
        script.spent = 0.001826
        for old, new in (
            ("received", "classified"),
            ("classified", "clarifying"),
            ("clarifying", "planned"),
            ("planned", "awaiting_plan_approval"),
        ):
            script.move(old, new)
        script.add(
            "approval.requested",
            {
                "approval_id": "ap_t_exec_1",
                "kind": "plan",
                "question": _plan_payload(3.0)["question"],
            },
        )
        script.add(
            "approval.decided",
            {
                "approval_id": "ap_t_exec_1",
                "kind": "plan",
                "decision": "approved",
                "actor": "tui:ann",
                "notes": "",
                "budget_usd": 3.0,
                "modules": [],
            },
            step=20,
        )
        script.move("awaiting_plan_approval", "approved", "budget $3.00; approved by tui:ann")
        script.move("approved", "handed_off", "runner inproc")
        script.move("handed_off", "executing")
        script.add("build.started", {"waves": PATENT_WAVES, "skipped": [], "rerun": []})
        for m in mods[:3]:
            script.start(m, 0)
        script.add(
            "module.retrying",
            {"attempt": 1, "error": "503 from offline: overloaded", "delay_s": 1.0},
            "feature_breakdown",
        )
        script.start(mods[0], 0, attempt=2)
        for m in mods[:3]:
            script.complete(m, attempts=2 if m is mods[0] else 1)
        script.start(mods[3], 1)
        self.event_lists["t_exec"] = script.events
        self.approval_rows["t_exec"] = [
            _approval("t_exec", 1, "plan", _plan_payload(3.0), "approved", 380)
        ]

        plan_rows = [
            _module_row(m, w, "pending") for m, w in zip(mods, (1, 1, 1, 2, 3, 4, 5), strict=True)
        ]
        self._task(
            "t_plan", "awaiting_plan_approval", PATENT_REQUEST, "patent_research", 5.0, 0.001826, 65
        )
        self.approval_rows["t_plan"] = [_approval("t_plan", 1, "plan", _plan_payload(5.0))]
        self._scripted_waiting("t_plan", "awaiting_plan_approval", "plan")

        budget_rows = [
            _module_row(mods[0], 1, "done", 200),
            _module_row(mods[1], 1, "running", 190),
            _module_row(mods[2], 1, "running", 190),
            *plan_rows[3:],
        ]
        self._task(
            "t_budget",
            "awaiting_budget",
            PATENT_REQUEST,
            "patent_research",
            0.05,
            0.027419,
            3 * 3600 + 20,
            budget_rows,
        )
        self.approval_rows["t_budget"] = [
            _approval("t_budget", 1, "plan", _plan_payload(0.05), "approved", 250),
            _approval(
                "t_budget",
                2,
                "budget",
                {
                    "question": "Budget reached: spent $0.0274 of $0.0500. Raise the ceiling "
                    "(suggested $0.09) or abort?",
                    "spent_usd": 0.027419,
                    "ceiling_usd": 0.05,
                    "needed_usd": 0.032847,
                    "suggested_ceiling_usd": 0.09,
                    "by_module": {
                        "_clarify": 0.001826,
                        "feature_breakdown": 0.025593,
                        "prior_art_search": 0.0,
                        "non_patent_literature_search": 0.0,
                    },
                    "by_tier": {"utility": 0.001826, "execution": 0.025593},
                    "by_provider": {"offline": 0.027419},
                },
            ),
        ]
        self._scripted_waiting("t_budget", "awaiting_budget", "budget")

        done_rows = [
            _module_row(m, w, "done", 300 - 20 * w)
            for m, w in zip(mods, (1, 1, 1, 2, 3, 4, 5), strict=True)
        ]
        review_payload = {
            "question": "Review the draft: approve it, revise (name modules to re-run), or reject?",
            "draft_markdown": DRAFT,
            "artifact": {"module_id": "_deliverable", "version": 1},
            "modules": [m["id"] for m in mods],
        }
        self._task(
            "t_review",
            "awaiting_review",
            PATENT_REQUEST,
            "patent_research",
            3.0,
            0.347129,
            26 * 3600,
            done_rows,
        )
        self.approval_rows["t_review"] = [
            _approval("t_review", 1, "plan", _plan_payload(3.0), "approved", 900),
            _approval("t_review", 2, "review", review_payload),
        ]
        self._scripted_waiting("t_review", "awaiting_review", "review")

        self._task(
            "t_clarify",
            "clarifying",
            "Write a long-form article on heat pumps for a regional newspaper",
            "long_form_article",
            5.0,
            0.001826,
            30,
        )
        self.approval_rows["t_clarify"] = [
            _approval(
                "t_clarify",
                1,
                "clarify",
                {
                    "question": "A few details would sharpen the article.",
                    "questions": [
                        {
                            "id": "q1",
                            "question": "Who is the audience?",
                            "default": "general readers",
                        },
                        {
                            "id": "q2",
                            "question": "How long should it be?",
                            "default": "1,500 words",
                        },
                        {"id": "q3", "question": "Any sources to prefer?", "default": ""},
                    ],
                },
            )
        ]
        self._scripted_waiting("t_clarify", "clarifying", "clarify")

        failed_rows = [
            *done_rows[:3],
            _module_row(mods[3], 2, "failed", 120, attempts=3),
            *plan_rows[4:],
        ]
        self._task(
            "t_failure",
            "executing",
            "Competitive analysis of EU heat-pump makers",
            "competitive_analysis",
            4.0,
            0.069,
            2 * 86400,
            failed_rows,
        )
        self.approval_rows["t_failure"] = [
            _approval(
                "t_failure",
                1,
                "failure",
                {
                    "question": "Module claim_chart failed after 3 attempts: retry, skip or abort?",
                    "module_id": "claim_chart",
                    "error": "ProviderError: 503 Service Unavailable (anthropic:claude-sonnet-4-6)",
                    "attempts": 3,
                    "dependents": ["novelty_analysis"],
                },
            )
        ]
        self._scripted_waiting("t_failure", "executing", "failure")

        self._task(
            "t_done",
            "completed",
            "Incident postmortem for the 2 March checkout outage",
            "incident_postmortem",
            2.0,
            0.423184,
            5 * 86400,
            done_rows,
        )
        self.approval_rows["t_done"] = [
            _approval("t_done", 1, "review", review_payload, "approved", 5 * 86000)
        ]
        self._task(
            "t_rejected",
            "rejected",
            "Market sizing for lab-grown leather in Japan",
            "market_research",
            5.0,
            0.0041,
            9 * 86400,
        )

    def _scripted_waiting(self, task_id: str, status: str, kind: str) -> None:
        script = EventScript(task_id, 120)
        script.move("received", "classified", "keywords patent, prior art")
        script.move("classified", status)
        pending = self.approval_rows[task_id][-1]
        script.add(
            "approval.requested",
            {
                "approval_id": pending["id"],
                "kind": kind,
                "question": pending["payload"]["question"],
            },
        )
        self.event_lists[task_id] = script.events


__all__ = [
    "DRAFT",
    "MODEL",
    "MODULE_COST",
    "NOW",
    "PATENT_MODULES",
    "PATENT_REQUEST",
    "PATENT_WAVES",
    "EventScript",
    "FakeSource",
    "_approval",
    "_event",
    "_module_row",
    "_plan_payload",
    "at",
]
