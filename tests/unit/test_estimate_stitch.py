"""Plan estimates price the stitch as it will run: past the stitch bound, module outputs are
stitched in groups and the group results again (``BuildMaster.stitch``), and the quality
judgement reads at most the bound. A 2000-module plan was priced as one stitch call reading
every output (4 M tokens at worst, which no model takes)."""

from __future__ import annotations

from agentfirm.domain.calls import MAX_TOKENS, QUALITY_ID, STITCH_ID
from agentfirm.domain.models import ModuleSpec, Plan, Tier
from agentfirm.master.estimate import estimate_plan, stitch_inputs

BOUND = 500_000
CAP = MAX_TOKENS["reasoning"]


class TokenPricing:
    """One nano-dollar per token, in or out."""

    def estimate_nano(self, tier: Tier, input_tokens: int, output_tokens: int) -> int:
        return input_tokens + output_tokens


def _plan(count: int) -> Plan:
    return Plan(modules=[ModuleSpec(id=f"m{n}", title=f"Part {n}") for n in range(count)])


def _rows(count: int, bound: int | None) -> dict[str, tuple[int, int]]:
    estimate = estimate_plan(_plan(count), TokenPricing(), stitch_tokens=bound)
    return {m.module_id: (m.expected_nano, m.worst_nano) for m in estimate.modules}


def test_outputs_that_fit_are_one_stitch_call() -> None:
    assert stitch_inputs(10_000, CAP, BOUND) == [450 + 10_000]
    assert stitch_inputs(10_000_000, CAP, None) == [450 + 10_000_000]  # no bound given


def test_past_the_bound_every_call_fits_and_the_levels_converge() -> None:
    outputs = 2000 * MAX_TOKENS["execution"]  # the worst case of 2000 execution modules
    calls = stitch_inputs(outputs, CAP, BOUND)

    assert len(calls) > 2
    assert max(calls) <= BOUND
    assert sum(calls) > outputs  # every output read once, and the group results again


def test_a_2000_module_plan_prices_the_hierarchical_stitch_and_a_judgement_within_the_bound() -> (
    None
):
    bounded, unbounded = _rows(2000, BOUND), _rows(2000, None)

    # More calls, each with its own output: more than one call over everything.
    assert bounded[STITCH_ID][1] > unbounded[STITCH_ID][1]
    assert bounded[STITCH_ID][0] > unbounded[STITCH_ID][0]
    # The judgement reads at most the bound (and writes its cap at worst).
    assert bounded[QUALITY_ID][1] <= BOUND + CAP < unbounded[QUALITY_ID][1]


def test_a_small_plan_is_priced_alike_with_or_without_the_bound() -> None:
    assert _rows(7, BOUND) == _rows(7, None)
