"""Modal prompts: one per approval kind, each dismissed with a ``Decision`` (or None: decide later).
``modal_for`` picks the one for an approval row; unknown kinds get a generic prompt built from the
payload."""

from __future__ import annotations

from typing import Any

from .base import ApprovalModal, GenericModal
from .budget import BudgetModal
from .clarify import ClarifyModal
from .confirm import ConfirmModal
from .failure import FailureModal
from .plan import PlanModal
from .review import ReviewModal
from .tool import ToolModal

_BY_KIND: dict[str, type[ApprovalModal]] = {
    "plan": PlanModal,
    "budget": BudgetModal,
    "review": ReviewModal,
    "clarify": ClarifyModal,
    "failure": FailureModal,
    "module_failed": FailureModal,
    "tool": ToolModal,
}


def modal_for(approval: dict[str, Any]) -> ApprovalModal:
    return _BY_KIND.get(str(approval.get("kind")), GenericModal)(approval)


__all__ = [
    "ApprovalModal",
    "BudgetModal",
    "ClarifyModal",
    "ConfirmModal",
    "FailureModal",
    "GenericModal",
    "PlanModal",
    "ReviewModal",
    "ToolModal",
    "modal_for",
]
