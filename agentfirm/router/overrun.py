"""Saying that a call cost more than it reserved (``budget.overrun``): it is booked in full all the
same, whether its answer said so at once or its provider's record did later (``reconcile``)."""

from __future__ import annotations

import structlog

from agentfirm.domain.models import LedgerEntry
from agentfirm.money import nano_to_float
from agentfirm.router.base import Notify

log = structlog.get_logger(__name__)


async def announce_overrun(notify: Notify, booked: LedgerEntry, reserved_nano: int) -> None:
    """Log and publish by how much ``booked`` passed its reservation. A lost notice is logged,
    never raised: the call is booked already."""
    log.warning(
        "budget.overrun",
        provider=booked.provider,
        reserved_nano=reserved_nano,
        cost_nano=booked.cost_nano,
    )
    payload = {
        "call_id": booked.call_id,
        "provider": booked.provider,
        "model": booked.model,
        "reserved_usd": nano_to_float(reserved_nano),
        "cost_usd": nano_to_float(booked.cost_nano),
        "overrun_usd": nano_to_float(booked.cost_nano - reserved_nano),
    }
    try:
        await notify(booked.task_id, "budget.overrun", payload, module_id=booked.module_id)
    except Exception as exc:
        log.warning("router.notify_failed", event="budget.overrun", error=str(exc))
