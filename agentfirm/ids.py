"""Identifiers: short, time-ordered, safe in paths, URLs and Redis keys."""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 32)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """``prefix`` + 8 chars of milliseconds + 6 random chars, e.g. ``t_01jcz3k9x2m4qa``."""
    return f"{prefix}_{_b32(time.time_ns() // 1_000_000, 8)}{_b32(secrets.randbits(30), 6)}"
