"""Attached documents: checked before anything is written, copied and indexed per task, searched
with FTS5 by the research agent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agentfirm.build_master.attachments import Attachments, match_query, passages_of, read_documents
from agentfirm.build_master.master import BuildMaster
from agentfirm.bus.sqlite_log import SQLiteLogBus
from agentfirm.errors import BadInput
from agentfirm.handoff.repos import LocalGitRepos
from agentfirm.master.agent import MasterAgent
from agentfirm.master.decisions import AutoDecider
from agentfirm.master.task_lock import TaskLocks
from agentfirm.personas.library import PersonaLibrary
from agentfirm.store.sqlite import SQLiteStore
from tests.fakes.scripted_router import ScriptedRouter

NOTES = """Site survey, March 2025

The roof of building B carries at most 40 kg per square metre; solar panels need a reinforced
frame there.

Building A has a south-facing roof of 1,200 square metres with no shading.

Grid connection: the transformer is rated 630 kVA and runs at 70% load in winter.
"""


@pytest.fixture
def survey(tmp_path: Path) -> Path:
    path = tmp_path / "site-survey.txt"
    path.write_text(NOTES, encoding="utf-8")
    return path


async def test_search_returns_the_passage_that_answers_a_question(
    tmp_path: Path, survey: Path
) -> None:
    library = Attachments(tmp_path / "att")
    await library.add("t1", read_documents([survey]))
    found = await library.search("t1", ["How much load can the roofs carry?"], limit=2)
    assert found
    assert "40 kg per square metre" in found[0].text
    assert found[0].label.startswith("site-survey.txt#")


async def test_search_keeps_each_question_s_best_passage(tmp_path: Path, survey: Path) -> None:
    library = Attachments(tmp_path / "att")
    await library.add("t1", read_documents([survey]))
    found = await library.search(
        "t1", ["What is the transformer rated?", "Is the roof shaded?"], limit=2
    )
    texts = " ".join(p.text for p in found)
    assert "630 kVA" in texts
    assert "no shading" in texts


@pytest.mark.parametrize(
    "question", ['"unbalanced quote', "roof AND NOT (NEAR*", "-", "kVA^2 OR:", ""]
)
async def test_a_question_full_of_query_syntax_is_searched_as_words(
    tmp_path: Path, survey: Path, question: str
) -> None:
    library = Attachments(tmp_path / "att")
    await library.add("t1", read_documents([survey]))
    await library.search("t1", [question], limit=3)  # no sqlite3.OperationalError
    assert all(term.startswith('"') for term in match_query(question).split(" OR ") if term)


def test_long_paragraphs_are_cut_and_short_ones_merged() -> None:
    text = "short one\n\nshort two\n\n" + "word " * 400
    pieces = passages_of(text)
    assert pieces[0] == "short one\nshort two"
    assert all(len(p) <= 900 for p in pieces)
    assert sum(p.count("word") for p in pieces) == 400


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("missing.md", None, "does not exist"),
        ("folder", "dir", "is not a file"),
        ("scan.pdf", b"%PDF-1.7\x00\x01\x02\xff", "not a UTF-8 text document"),
        ("empty.txt", b"   \n", "not a UTF-8 text document"),
    ],
)
def test_a_bad_attachment_is_bad_input_naming_it(
    tmp_path: Path, name: str, content: bytes | str | None, needle: str
) -> None:
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(BadInput, match=needle) as raised:
        read_documents([path])
    assert str(path) in str(raised.value)


@pytest.fixture
async def master(tmp_path: Path) -> AsyncIterator[MasterAgent]:
    store, bus = SQLiteStore(tmp_path / "s.db"), SQLiteLogBus(tmp_path / "b.db")
    await store.open()
    await bus.open()
    locks = TaskLocks(tmp_path / "locks")
    router = ScriptedRouter({})
    yield MasterAgent(
        store=store,
        bus=bus,
        build=BuildMaster(
            store=store, bus=bus, router=router, attachments=Attachments(tmp_path / "att")
        ),
        personas=PersonaLibrary.load(),
        pricing=router,  # type: ignore[arg-type]  # never priced here
        repos=LocalGitRepos(tmp_path / "repos"),
        decider=AutoDecider(),
        locks=locks,
    )
    locks.release_all()
    await bus.close()
    await store.close()


async def test_intake_copies_and_indexes_the_attachments(
    master: MasterAgent, survey: Path, tmp_path: Path
) -> None:
    task = await master.intake(
        "Assess solar panels", persona="market_research", attachments=[survey]
    )
    await asyncio.to_thread(survey.unlink)  # the task keeps its own copy
    library = Attachments(tmp_path / "att")
    assert await library.documents(task.id) == ["site-survey.txt"]
    found = await library.search(task.id, ["transformer rating"], limit=1)
    assert "630 kVA" in found[0].text
    (indexed,) = [e for e in await master.bus.replay(task.id) if e.type == "attachments.indexed"]
    assert indexed.payload["documents"][0]["name"] == "site-survey.txt"


async def test_a_bad_attachment_at_intake_writes_nothing(
    master: MasterAgent, survey: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.md"
    with pytest.raises(BadInput, match=r"nope\.md"):
        await master.intake(
            "Assess solar panels", persona="market_research", attachments=[survey, missing]
        )
    assert await master.store.list_tasks() == []
    assert not (tmp_path / "att").exists()
