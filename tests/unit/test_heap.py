"""A driving process sets its start-up heap aside once: what start-up made is frozen, garbage made
afterwards is still collected, and a second call changes nothing. Each case runs in a fresh
interpreter (freezing this test process's heap would hold on to every other test's objects)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import gc, weakref
    from agentfirm.runs.heap import settle_heap

    class Node:
        pass

    kept = [Node() for _ in range(1000)]  # start-up's own objects
    first = settle_heap()
    assert first >= 1000, first
    assert gc.get_freeze_count() == first

    later = Node()
    later.me = later  # a cycle made after start-up
    gone = weakref.ref(later)
    del later
    gc.collect()
    assert gone() is None, "garbage made after settling was not collected"

    assert settle_heap() == first  # once a process
    print("ok")
    """
)


def test_settling_freezes_start_up_once_and_later_garbage_is_still_collected() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "ok"
