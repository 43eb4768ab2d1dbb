"""Identifiers: short, time-ordered, safe in paths, URLs and Redis keys."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(n: int, width: int) -> str:
    """The last ``width`` base-32 digits of ``n``, most significant first."""
    # Shifts and masks, not divmod in a loop: an id is made for every LLM call and every row.
    return "".join([_ALPHABET[(n >> shift) & 31] for shift in range(5 * (width - 1), -1, -5)])


def new_id(prefix: str) -> str:
    """``prefix`` + 8 chars of milliseconds + 6 random chars, e.g. ``t_01jcz3k9x2m4qa``."""
    return f"{prefix}_{_b32(time.time_ns() // 1_000_000, 8)}{_b32(secrets.randbits(30), 6)}"
