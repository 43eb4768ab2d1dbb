"""Sibling sub-agents share a cacheable prefix: rules and engagement, then their own module."""

from __future__ import annotations

from agentfirm.build_master.subagent import build_messages
from agentfirm.domain.models import TaskSpec
from agentfirm.personas.library import PersonaLibrary


def test_every_module_of_a_task_starts_with_the_same_cacheable_prefix() -> None:
    persona = PersonaLibrary.load().get("market_research")
    spec = TaskSpec(
        task_id="t_1",
        request="Size the market for home batteries in Germany",
        persona=persona.id,
        persona_name=persona.name,
        plan=persona.to_plan(),
        budget_nano=10**9,
        assumptions=["Residential only."],
    )

    briefs = [build_messages(spec, module, {}) for module in spec.plan.modules]

    prefixes = {tuple((m.role, m.content, m.cache) for m in brief[:2]) for brief in briefs}
    assert len(prefixes) == 1
    assert [m.cache for m in briefs[0]] == [False, True, False]
    assert "Residential only." in briefs[0][1].content
    own = [brief[2].content for brief in briefs]
    assert all(module.id in text for module, text in zip(spec.plan.modules, own, strict=True))
