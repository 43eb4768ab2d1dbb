"""Attachments: the documents a client attached to a task, kept under the data dir and indexed
with SQLite FTS5 for the research agent.

Per task, ``{root}/{task_id}/files/`` holds copies of the documents (as attached, so they stay
readable after the originals move) and ``{root}/{task_id}/index.sqlite3`` their passages. A task
gets its documents once, at intake: everything is read and checked first, then written to a
scratch directory that is renamed into place, so a bad path leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentfirm.domain.tools import ToolSpec
from agentfirm.errors import BadInput

MAX_BYTES = 5 * 1024 * 1024
"""The largest document accepted (text only: a bigger one is rarely a brief's attachment)."""
PASSAGE_CHARS = 900
"""Passages are paragraphs merged up to about this many characters: long enough to hold a fact
with its context, short enough that a handful fit in a prompt."""
INDEX_NAME = "index.sqlite3"
FILES_DIR = "files"

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Words that match everywhere and say nothing about what a question is after.
_STOPWORD_TEXT = (
    "the and for with that this from what which who whom when where why how are was were is "
    "be been being does did do has have had can could would should will shall may might must "
    "any all each some such than then there their them they its it's into onto about over "
    "under our your you not but per via use used using"
)
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class Document:
    """A document read and checked, not yet stored."""

    name: str
    text: str


@dataclass(frozen=True)
class Passage:
    """One searchable piece of an attached document. ``label`` is how notes cite it."""

    document: str
    number: int
    text: str

    @property
    def label(self) -> str:
        return f"{self.document}#{self.number}"


def _unique_names(paths: Sequence[Path]) -> list[str]:
    """File names as attached, with ``-2``, ``-3``… added where two share one."""
    names: list[str] = []
    for path in paths:
        name, n = path.name, 1
        while name in names:
            n += 1
            name = f"{path.stem}-{n}{path.suffix}"
        names.append(name)
    return names


def read_documents(paths: Sequence[Path]) -> list[Document]:
    """Read and check every path (blocking: call it in a thread). Raises ``BadInput`` naming the
    first path that is missing, not a file, too big, or not UTF-8 text."""
    documents = []
    for path, name in zip(paths, _unique_names(paths), strict=True):
        where = f"attachment {path}"
        if not path.exists():
            raise BadInput(f"{where} does not exist", hint="check the path given to --attach")
        if not path.is_file():
            raise BadInput(f"{where} is not a file", hint="attach files, not directories")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise BadInput(
                f"{where} is {size / 1024 / 1024:.1f} MiB, above the {MAX_BYTES // 1024 // 1024} "
                "MiB limit",
                hint="attach the relevant part, or split it into smaller files",
            )
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise BadInput(f"{where} cannot be read: {err.strerror}") from err
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = ""
        if not text.strip() or "\x00" in text:
            raise BadInput(
                f"{where} is not a UTF-8 text document",
                hint="attach text (.md, .txt, .csv, .html…); convert a PDF to text first",
            )
        documents.append(Document(name, text))
    return documents


def passages_of(text: str) -> list[str]:
    """``text`` cut into passages: paragraphs, merged up to ``PASSAGE_CHARS``; a longer paragraph
    is cut at word boundaries."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        while len(paragraph) > PASSAGE_CHARS:
            cut = paragraph.rfind(" ", 0, PASSAGE_CHARS)
            cut = cut if cut > PASSAGE_CHARS // 2 else PASSAGE_CHARS
            pieces.append(paragraph[:cut])
            paragraph = paragraph[cut:].lstrip()
        if paragraph:
            pieces.append(paragraph)
    passages: list[str] = []
    for piece in pieces:
        if passages and len(passages[-1]) + 1 + len(piece) <= PASSAGE_CHARS:
            passages[-1] += "\n" + piece
        else:
            passages.append(piece)
    return passages


def match_query(question: str) -> str:
    """An FTS5 query for a natural-language question: its telling words, each quoted (so no word
    is read as FTS syntax), any of them matching. Empty when the question has none."""
    words = dict.fromkeys(
        w.casefold() for w in _WORD.findall(question) if len(w) > 2 or w.isdigit()
    )
    terms = [f'"{w}"' for w in words if w not in _STOPWORDS]
    return " OR ".join(terms)


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path)
    try:
        yield connection
    finally:
        connection.close()


class Attachments:
    """The attachment library under ``root`` (``{data_dir}/attachments``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, task_id: str) -> Path:
        return self.root / task_id

    async def read(self, paths: Sequence[Path]) -> list[Document]:
        """See ``read_documents``; nothing is written."""
        return await asyncio.to_thread(read_documents, [Path(p) for p in paths])

    async def add(self, task_id: str, documents: Sequence[Document]) -> list[tuple[str, int]]:
        """Store and index ``documents`` for ``task_id``: all of them or, on an error, none.
        Returns ``(name, passages)`` per document. Raises ``BadInput`` when the task already
        has attachments."""
        return await asyncio.to_thread(self._add, task_id, list(documents))

    def _add(self, task_id: str, documents: list[Document]) -> list[tuple[str, int]]:
        final = self._dir(task_id)
        if final.exists():
            raise BadInput(f"task {task_id} already has attachments")
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{task_id}-", dir=self.root))
        try:
            (scratch / FILES_DIR).mkdir()
            counts = []
            with _connect(scratch / INDEX_NAME) as db:
                db.execute(
                    "CREATE VIRTUAL TABLE passages USING fts5("
                    "document UNINDEXED, number UNINDEXED, text, tokenize='porter unicode61')"
                )
                for document in documents:
                    (scratch / FILES_DIR / document.name).write_text(
                        document.text, encoding="utf-8"
                    )
                    pieces = passages_of(document.text)
                    db.executemany(
                        "INSERT INTO passages (document, number, text) VALUES (?, ?, ?)",
                        [(document.name, n, text) for n, text in enumerate(pieces, start=1)],
                    )
                    counts.append((document.name, len(pieces)))
                db.commit()
            os.replace(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return counts

    async def documents(self, task_id: str) -> list[str]:
        """The names of the task's attached documents (none: an empty list)."""
        files = self._dir(task_id) / FILES_DIR
        return await asyncio.to_thread(lambda: sorted(p.name for p in files.glob("*")))

    async def texts(self, task_id: str) -> dict[str, str]:
        """The task's attached documents by name, as attached (none: empty)."""
        files = self._dir(task_id) / FILES_DIR

        def read() -> dict[str, str]:
            return {p.name: p.read_text(encoding="utf-8") for p in sorted(files.glob("*"))}

        return await asyncio.to_thread(read)

    async def search(self, task_id: str, questions: Sequence[str], *, limit: int) -> list[Passage]:
        """The passages that best answer ``questions`` (bm25 rank), at most ``limit``, each once:
        the best of each question first, then the next best of each, and so on."""
        index = self._dir(task_id) / INDEX_NAME
        return await asyncio.to_thread(self._search, index, list(questions), limit)

    @staticmethod
    def _search(index: Path, questions: list[str], limit: int) -> list[Passage]:
        if not index.exists() or limit < 1:
            return []
        ranked: list[list[Passage]] = []
        with _connect(index) as db:
            for question in questions:
                query = match_query(question)
                if not query:
                    continue
                rows = db.execute(
                    "SELECT document, number, text FROM passages WHERE passages MATCH ? "
                    "ORDER BY bm25(passages) LIMIT ?",
                    (query, limit),
                ).fetchall()
                ranked.append([Passage(str(d), int(n), str(t)) for d, n, t in rows])
        found: dict[str, Passage] = {}
        for position in range(limit):
            for hits in ranked:
                if position < len(hits) and len(found) < limit:
                    found.setdefault(hits[position].label, hits[position])
        return list(found.values())


SEARCH_SPEC = ToolSpec(
    name="search_attachments",
    description="Search the documents the client attached to this task; returns the best "
    "matching passages, each labelled with its document and passage number.",
    input_schema={
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What to look for, in plain words."},
        },
        "required": ["query"],
        "additionalProperties": False,
    },
)
SEARCH_LIMIT = 6


@dataclass(frozen=True)
class SearchAttachments:
    """The ``search_attachments`` tool of one task."""

    attachments: Attachments
    task_id: str
    spec: ToolSpec = SEARCH_SPEC

    async def call(self, arguments: dict[str, Any]) -> str:
        query = str(arguments.get("query", ""))
        passages = await self.attachments.search(self.task_id, [query], limit=SEARCH_LIMIT)
        if not passages:
            return "No attached passage matches."
        return "\n\n".join(f"[{p.label}] {p.text}" for p in passages)
