"""Plan cost estimates: expected and worst case, per module and in total, from list prices.

Token counts are estimates (nothing has run yet): inputs grow with upstream outputs, expected
outputs are a typical share of ``max_tokens``, and the worst case is every call spending its full
``max_tokens`` — which is also what the router reserves, so a budget at the worst case never stops
a first pass of the plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agentfirm.domain.calls import MAX_TOKENS, QUALITY_ID, STITCH_ID
from agentfirm.domain.models import Plan, Tier
from agentfirm.money import nano_to_float

_EXPECTED_SHARE = 0.45
_BRIEF_TOKENS = 450
_TOOL_RESULT_TOKENS = 2_500
"""What one round of tool results typically adds to the next turn's input (a fetched page)."""
_WORST_TOOL_RESULT_TOKENS = 10_000
"""What one round may add at most, as tools cap their results."""
_TOOL_CALL_TOKENS = 200
"""The output of a turn that only asks for tools."""
DEFAULT_MAX_TURNS = 6


class Pricing(Protocol):
    def estimate_nano(self, tier: Tier, input_tokens: int, output_tokens: int) -> int: ...


@dataclass(frozen=True)
class ModuleEstimate:
    module_id: str
    tier: Tier
    expected_nano: int
    worst_nano: int


@dataclass(frozen=True)
class Estimate:
    modules: tuple[ModuleEstimate, ...]

    @property
    def expected_nano(self) -> int:
        return sum(m.expected_nano for m in self.modules)

    @property
    def worst_nano(self) -> int:
        return sum(m.worst_nano for m in self.modules)

    def suggested_budget_nano(self) -> int:
        """Worst case plus a fifth for a revision round, rounded up to the cent."""
        cents = -(-(self.worst_nano * 6 // 5) // 10_000_000)
        return max(cents, 1) * 10_000_000

    def to_json(self) -> dict[str, object]:
        return {
            "expected_usd": nano_to_float(self.expected_nano),
            "worst_usd": nano_to_float(self.worst_nano),
            "by_module": {
                m.module_id: {
                    "tier": m.tier,
                    "expected_usd": nano_to_float(m.expected_nano),
                    "worst_usd": nano_to_float(m.worst_nano),
                }
                for m in self.modules
            },
        }


def _loop_nano(
    pricing: Pricing,
    tier: Tier,
    first_in: int,
    out: int,
    turns: int,
    per_round: int,
    *,
    worst: bool,
) -> int:
    """Cost of an agent loop of ``turns`` turns: each earlier turn asks for tools (its whole
    output cap in the worst case), each adds ``per_round`` tokens of results to the next; the
    last turn answers with ``out`` tokens."""
    cap = out if worst else _TOOL_CALL_TOKENS
    total = 0
    for turn in range(turns):
        last = turn == turns - 1
        total += pricing.estimate_nano(tier, first_in + turn * per_round, out if last else cap)
    return total


def stitch_inputs(outputs: int, out: int, bound: int | None) -> list[int]:
    """The input tokens of each stitch call over ``outputs`` tokens of module outputs, as
    ``BuildMaster.stitch`` makes them: one call when they fit ``bound``, else groups that fit it,
    whose results (``out`` tokens each) are stitched again, level by level."""
    calls: list[int] = []
    room = None if bound is None else bound - _BRIEF_TOKENS
    while room is not None and room > 0 and outputs > room:
        groups = -(-outputs // room)
        if groups * out >= outputs:  # the results would not shrink: one call holds them
            break
        calls += [_BRIEF_TOKENS + -(-outputs // groups)] * groups
        outputs = groups * out
    return [*calls, _BRIEF_TOKENS + outputs]


def estimate_plan(
    plan: Plan,
    pricing: Pricing,
    *,
    checklist_items: int = 3,
    default_max_turns: int = DEFAULT_MAX_TURNS,
    stitch_tokens: int | None = None,
) -> Estimate:
    """Estimate every sub-agent call, the stitch and the quality judgement. A module with tools
    is an agent loop: expected one round of tools then the answer, at worst ``max_turns`` rounds
    and the answer. ``stitch_tokens``: the most input a stitch call, or the judgement, takes
    (``BuildMaster.stitch_tokens``; None: no bound), past which the stitch is hierarchical."""
    expected_out: dict[str, int] = {}
    worst_out: dict[str, int] = {}
    rows: list[ModuleEstimate] = []
    for module in plan.modules:
        cap = MAX_TOKENS[module.tier]
        exp_in = _BRIEF_TOKENS + sum(expected_out[d] for d in module.depends_on)
        worst_in = _BRIEF_TOKENS + sum(worst_out[d] for d in module.depends_on)
        expected_out[module.id] = int(cap * _EXPECTED_SHARE)
        worst_out[module.id] = cap
        turns = (module.max_turns or default_max_turns) + 1 if module.tools else 1
        rows.append(
            ModuleEstimate(
                module.id,
                module.tier,
                _loop_nano(
                    pricing,
                    module.tier,
                    exp_in,
                    expected_out[module.id],
                    min(turns, 2),
                    _TOOL_RESULT_TOKENS,
                    worst=False,
                ),
                _loop_nano(
                    pricing,
                    module.tier,
                    worst_in,
                    cap,
                    turns,
                    _WORST_TOOL_RESULT_TOKENS,
                    worst=True,
                ),
            )
        )
    stitch_cap = MAX_TOKENS["reasoning"]
    stitch_exp = int(stitch_cap * _EXPECTED_SHARE)
    all_exp, all_worst = sum(expected_out.values()), sum(worst_out.values())
    rows.append(
        ModuleEstimate(
            STITCH_ID,
            "reasoning",
            sum(
                pricing.estimate_nano("reasoning", tokens, stitch_exp)
                for tokens in stitch_inputs(all_exp, stitch_exp, stitch_tokens)
            ),
            sum(
                pricing.estimate_nano("reasoning", tokens, stitch_cap)
                for tokens in stitch_inputs(all_worst, stitch_cap, stitch_tokens)
            ),
        )
    )
    judge_in = _BRIEF_TOKENS + stitch_cap + all_exp // 2 + 40 * checklist_items
    judge_worst = judge_in + all_worst
    if stitch_tokens is not None:  # a deliverable past the bound is judged cut
        judge_in, judge_worst = min(judge_in, stitch_tokens), min(judge_worst, stitch_tokens)
    rows.append(
        ModuleEstimate(
            QUALITY_ID,
            "reasoning",
            pricing.estimate_nano("reasoning", judge_in, 120 * checklist_items),
            pricing.estimate_nano("reasoning", judge_worst, MAX_TOKENS["reasoning"]),
        )
    )
    return Estimate(tuple(rows))
