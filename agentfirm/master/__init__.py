"""The Master Agent: lifecycle, classification, planning, approvals, coordination."""
