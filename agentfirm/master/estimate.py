"""Plan cost estimates: expected and worst case, per module and in total, from list prices.

Token counts are estimates (nothing has run yet): inputs grow with upstream outputs, expected
outputs are a typical share of ``max_tokens``, and the worst case is every call spending its full
``max_tokens`` — which is also what the router reserves, so a budget at the worst case never stops
a first pass of the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from agentfirm.domain import Plan, Tier
from agentfirm.money import nano_to_float

MAX_TOKENS: Mapping[Tier, int] = {"reasoning": 4096, "execution": 2048, "utility": 1024}
"""Per-call output ceiling by tier; the Build Master passes these to the router."""

_EXPECTED_SHARE = 0.45
_BRIEF_TOKENS = 450
STITCH_ID = "_stitch"
QUALITY_ID = "_quality"


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


def estimate_plan(plan: Plan, pricing: Pricing, *, checklist_items: int = 3) -> Estimate:
    """Estimate every sub-agent call, the stitch and the quality judgement."""
    expected_out: dict[str, int] = {}
    worst_out: dict[str, int] = {}
    rows: list[ModuleEstimate] = []
    for module in plan.modules:
        cap = MAX_TOKENS[module.tier]
        exp_in = _BRIEF_TOKENS + sum(expected_out[d] for d in module.depends_on)
        worst_in = _BRIEF_TOKENS + sum(worst_out[d] for d in module.depends_on)
        expected_out[module.id] = int(cap * _EXPECTED_SHARE)
        worst_out[module.id] = cap
        rows.append(
            ModuleEstimate(
                module.id,
                module.tier,
                pricing.estimate_nano(module.tier, exp_in, expected_out[module.id]),
                pricing.estimate_nano(module.tier, worst_in, cap),
            )
        )
    stitch_cap = MAX_TOKENS["reasoning"]
    all_exp, all_worst = sum(expected_out.values()), sum(worst_out.values())
    rows.append(
        ModuleEstimate(
            STITCH_ID,
            "reasoning",
            pricing.estimate_nano(
                "reasoning", _BRIEF_TOKENS + all_exp, int(stitch_cap * _EXPECTED_SHARE)
            ),
            pricing.estimate_nano("reasoning", _BRIEF_TOKENS + all_worst, stitch_cap),
        )
    )
    judge_in = _BRIEF_TOKENS + stitch_cap + all_exp // 2 + 40 * checklist_items
    rows.append(
        ModuleEstimate(
            QUALITY_ID,
            "reasoning",
            pricing.estimate_nano("reasoning", judge_in, 120 * checklist_items),
            pricing.estimate_nano("reasoning", judge_in + all_worst, MAX_TOKENS["reasoning"]),
        )
    )
    return Estimate(tuple(rows))
