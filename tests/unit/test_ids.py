"""Ids: unique across processes, a forked child's included."""

from __future__ import annotations

import os

from agentfirm.ids import new_id


def test_a_forked_child_makes_other_ids_than_its_parent() -> None:
    # Same millisecond or not, the random tail must differ: a child sharing its parent's random
    # state would repeat the parent's next ids.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, " ".join(new_id("c")[-6:] for _ in range(4)).encode())
        os._exit(0)
    os.close(write)
    mine = [new_id("c")[-6:] for _ in range(4)]
    with os.fdopen(read, "rb") as pipe:
        theirs = pipe.read().decode().split()
    os.waitpid(pid, 0)
    assert len(theirs) == 4
    assert mine != theirs


def test_ids_are_prefixed_and_distinct() -> None:
    ids = [new_id("call") for _ in range(1000)]
    assert all(i.startswith("call_") and len(i) == len("call_") + 14 for i in ids)
    assert len(set(ids)) == len(ids)
