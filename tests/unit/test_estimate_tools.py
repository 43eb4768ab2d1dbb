"""Plan estimates of modules with tools: an agent loop costs more than one call, and its worst
case grows with ``max_turns``."""

from __future__ import annotations

from agentfirm.domain.models import ModuleSpec, Plan, Tier
from agentfirm.master.estimate import estimate_plan


class TokenPricing:
    """One nano-dollar per token, in or out."""

    def estimate_nano(self, tier: Tier, input_tokens: int, output_tokens: int) -> int:
        return input_tokens + output_tokens


def _module_row(module: ModuleSpec, default_max_turns: int = 6) -> tuple[int, int]:
    estimate = estimate_plan(
        Plan(modules=[module]), TokenPricing(), default_max_turns=default_max_turns
    )
    row = next(m for m in estimate.modules if m.module_id == module.id)
    return row.expected_nano, row.worst_nano


def test_a_module_with_tools_is_estimated_as_a_loop() -> None:
    plain = _module_row(ModuleSpec(id="a"))
    tooled = _module_row(ModuleSpec(id="a", tools=["fetch_url"]))
    assert tooled[0] > plain[0]  # a round of tools, then the answer
    assert tooled[1] > 7 * plain[1]  # up to six rounds and the answer, each input larger


def test_the_worst_case_follows_max_turns() -> None:
    two = _module_row(ModuleSpec(id="a", tools=["fetch_url"], max_turns=2))
    six = _module_row(ModuleSpec(id="a", tools=["fetch_url"], max_turns=6))
    default = _module_row(ModuleSpec(id="a", tools=["fetch_url"]), default_max_turns=2)
    assert two[1] < six[1]
    assert default == two
