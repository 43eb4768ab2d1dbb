"""Hierarchical stitching: when the module outputs do not fit one stitch call, stitch them in
groups (plan order) and then stitch the group results, level by level, until one call holds them.

The bound is a share of the stitch model's context window (from genai-prices' model metadata,
else a default window). Pure functions; ``BuildMaster.stitch`` makes the calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agentfirm.build_master.assembly import stitch_messages
from agentfirm.build_master.subagent import render_upstream
from agentfirm.domain.calls import MAX_TOKENS
from agentfirm.domain.models import Artifact, TaskSpec
from agentfirm.router.base import Message
from agentfirm.router.tokens import estimate_messages, estimate_tokens

STITCH_SHARE = 0.5
"""The share of the stitch model's context window one stitch call's input may take (the rest:
the reply, and the estimate's error)."""
DEFAULT_CONTEXT_TOKENS = 200_000
"""The window assumed when the model's metadata does not say (the default reasoning models')."""
MIN_STITCH_TOKENS = 4 * MAX_TOKENS["reasoning"]
"""A bound below this could not hold even a few group results: stitching would never converge."""
PART_PREFIX = "_stitch_part_"


def stitch_bound(context_window: int | None) -> int:
    """The most input tokens one stitch call may take, for a model with ``context_window``."""
    window = context_window or DEFAULT_CONTEXT_TOKENS
    return max(int(window * STITCH_SHARE), MIN_STITCH_TOKENS)


def fits(messages: Sequence[Message], bound: int) -> bool:
    return estimate_messages(messages) <= bound


def groups(
    spec: TaskSpec, inputs: Mapping[str, Artifact], bound: int, *, skipped: Sequence[str] = ()
) -> list[list[str]]:
    """``inputs`` (in order) in consecutive groups whose stitch call fits ``bound``; an input too
    large to share a call goes alone. At least two groups when there are two inputs or more."""
    room = bound - estimate_messages(stitch_messages(spec, {}, skipped=skipped))
    found: list[list[str]] = [[]]
    used = 0
    for key, artifact in inputs.items():
        size = estimate_tokens(render_upstream({key: artifact}, level=2)) + 1
        if found[-1] and used + size > room:
            found.append([])
            used = 0
        found[-1].append(key)
        used += size
    if len(found) == 1 and len(inputs) > 1:  # it must shrink: split in two
        keys = found[0]
        found = [keys[: len(keys) // 2], keys[len(keys) // 2 :]]
    return found


def part_messages(
    spec: TaskSpec, inputs: Mapping[str, Artifact], *, part: int, of: int
) -> list[Message]:
    """The stitch of one group: a partial deliverable covering only these inputs, for the next
    level to stitch with the others."""
    system, user = stitch_messages(spec, inputs)
    note = (
        f"\n\nThis is part {part} of {of}: the engagement has too many modules for one pass. "
        "Stitch only the outputs given here into a partial deliverable whose sections cover "
        "them all; the parts are stitched together afterwards."
    )
    return [Message(system.role, system.content + note), user]


def part_artifact(spec: TaskSpec, part: int, level: int, content: dict[str, object]) -> Artifact:
    """A group's result as an input of the next level (kept in memory, never saved)."""
    return Artifact(
        task_id=spec.task_id,
        module_id=f"{PART_PREFIX}{level}_{part}",
        version=1,
        output_type="deliverable",
        content=content,
    )
