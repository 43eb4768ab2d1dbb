"""Identifiers: short, time-ordered, safe in paths, URLs and Redis keys."""

from __future__ import annotations

import os
import random
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case

# Seeded from os.urandom, and again in a forked child so parent and child never share a sequence.
# Not ``secrets``: an id needs to be unique, not unguessable, and ``secrets`` reads the kernel's
# random source on every call (a system call, about 1 us, for every LLM call and every row).
_RANDOM = random.Random()
os.register_at_fork(after_in_child=_RANDOM.seed)


def _b32(n: int, width: int) -> str:
    """The last ``width`` base-32 digits of ``n``, most significant first."""
    # Shifts and masks, not divmod in a loop: an id is made for every LLM call and every row.
    return "".join([_ALPHABET[(n >> shift) & 31] for shift in range(5 * (width - 1), -1, -5)])


def new_id(prefix: str) -> str:
    """``prefix`` + 8 chars of milliseconds + 6 random chars, e.g. ``t_01jcz3k9x2m4qa``."""
    return f"{prefix}_{_b32(time.time_ns() // 1_000_000, 8)}{_b32(_RANDOM.getrandbits(30), 6)}"
