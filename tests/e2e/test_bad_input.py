"""The bad-input corpus (issue 20, done-when 4): what a new user gets wrong, one row each, run as
users run it — the real CLI in a subprocess, in-process (``--no-daemon``) and, where the command
goes through it, through one daemon shared by the whole file.

Every row must: exit 2; say one line on stderr, ``agentfirm: error: what (how to fix)``, without
a traceback or ``internal error``; under ``--json`` print the same words as one document
``{"error", "exit_code"}`` on stdout (else nothing there); write nothing — no task, ledger row,
approval, reservation or repo, and no file under the data dir; and say the same words through the
daemon as in-process.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Result, clean_env, run_cli, stop_daemon

pytestmark = [pytest.mark.e2e, pytest.mark.heavy]

REQUEST = "Prior art search and novelty analysis for a patent on a self-healing solder alloy"
TABLES = ("tasks", "ledger", "approvals", "reservations", "transitions", "artifacts", "module_runs")
ERROR_LINE = re.compile(r"^agentfirm: error: (?P<message>.+)$")
HOW_TO_FIX = re.compile(r"\(.+\)| — .+")  # a hint in brackets, or a config problem's " — fix"


@dataclass(frozen=True)
class Row:
    """One bad input: ``argv`` (``{A}`` a rejected task, ``{B}`` one awaiting plan approval,
    ``{F}`` the folder of prepared files), extra ``env``, a ``config`` (config.toml text, run on
    a home of its own), the words the error must hold, and whether it goes through the daemon."""

    name: str
    argv: tuple[str, ...]
    needle: str
    daemon: bool = True
    env: Mapping[str, str] = field(default_factory=dict)
    config: str | None = None
    stdin: str = ""
    lines: int = 1
    """More than one when the input has that many problems, each said on its own line."""


def run_(*argv: str) -> tuple[str, ...]:
    return ("run", REQUEST, "--yes", "--offline", *argv)


ROWS = [
    # budgets, as typed
    Row("budget-zero", run_("--budget", "0"), "--budget '0' is not a positive amount"),
    Row("budget-negative", run_("--budget", "-1"), "--budget '-1' is not a positive amount"),
    Row("budget-overflow", run_("--budget", "1e309"), "over the $1,000,000 limit"),
    Row("budget-word", run_("--budget", "abc"), "--budget 'abc' is not a positive amount"),
    Row("budget-dollar-sign", run_("--budget", "$"), "--budget '$' is not a positive amount"),
    Row("budget-over-limit", run_("--budget", "1000001"), "over the $1,000,000 limit"),
    Row("budget-tiny", run_("--budget", "0.0000000001"), "under the $0.0001 minimum"),
    Row("budget-nan", run_("--budget", "nan"), "--budget 'nan' is not a positive amount"),
    Row("budget-json", run_("--budget", "abc", "--json"), "--budget 'abc' is not a positive"),
    Row("budget-missing-value", ("run", REQUEST, "--budget"), "requires an argument"),
    # the request and what shapes it
    Row("request-empty", ("run", "", "--yes", "--offline"), "the request is empty"),
    Row("request-blank", ("run", "   ", "--yes", "--offline"), "the request is empty"),
    Row("request-missing", ("run",), "Missing argument 'request'"),
    Row("request-empty-json", ("run", "", "--yes", "--offline", "--json"), "request is empty"),
    Row("persona-unknown", run_("--persona", "nope"), "unknown persona 'nope'"),
    Row("runner-unknown", run_("--runner", "gpu"), "--runner 'gpu' is not a runner"),
    Row("option-typo", ("run", REQUEST, "--bduget", "3"), "No such option: --bduget"),
    Row("no-terminal", ("run", REQUEST, "--offline"), "approvals need a terminal"),
    Row("no-provider", ("run", REQUEST, "--yes"), "3 configuration problems", lines=4),
    # --attach
    Row("attach-missing", run_("--attach", "{F}/missing.md"), "does not exist"),
    Row("attach-directory", run_("--attach", "{F}/folder"), "is not a readable file"),
    # --allow-tool
    Row("allow-tool-unknown", run_("--allow-tool", "rm_rf"), "--allow-tool 'rm_rf': no such tool"),
    Row(
        "allow-tool-no-server",
        run_("--allow-tool", "mcp:git/commit"),
        "--allow-tool 'mcp:git/commit': mcp.json lists no server 'git'",
    ),
    Row("attach-binary", run_("--attach", "{F}/binary.dat"), "is not a UTF-8 text document"),
    Row("attach-huge", run_("--attach", "{F}/huge.txt"), "above the 5 MiB limit"),
    # --out: refused before anything runs (and pays)
    Row("out-missing-folder", run_("--out", "/nonexistent/dir/x.md"), "/nonexistent/dir does"),
    Row("out-directory", run_("--out", "{F}/folder"), "is a directory"),
    Row("out-under-a-file", run_("--out", "{F}/notes.md/x.md"), "is not a folder"),
    Row("out-json", run_("--out", "/nonexistent/x/y.md", "--json"), "does not exist"),
    # decisions on tasks that do not wait for them
    Row("approve-unknown", ("approve", "t_nope"), "task t_nope not found"),
    Row("approve-not-waiting", ("approve", "{A}"), "is rejected, not awaiting plan approval"),
    Row("approve-bad-budget", ("approve", "{B}", "--budget", "abc"), "--budget 'abc'"),
    Row("approve-bad-out", ("approve", "{B}", "--out", "/nonexistent/x/y.md"), "does not exist"),
    Row("reject-not-waiting", ("reject", "{A}"), "only a task awaiting plan approval"),
    Row("reject-unknown", ("reject", "t_nope"), "task t_nope not found"),
    Row("revise-without-notes", ("revise", "{B}"), "Missing option '--notes'"),
    Row("revise-empty-notes", ("revise", "{B}", "--notes", " "), "--notes is empty"),
    Row("resume-unknown", ("resume", "t_nope", "--yes"), "task t_nope not found"),
    Row("resume-bad-budget", ("resume", "{A}", "--budget", "-2"), "--budget '-2'"),
    Row("cancel-unknown", ("tasks", "cancel", "t_nope"), "task t_nope not found"),
    Row("cancel-final", ("tasks", "cancel", "{A}"), "already rejected: nothing to cancel"),
    Row("resume-final", ("resume", "{A}", "--yes", "--offline"), "nothing to resume"),
    Row("resume-final-json", ("resume", "{A}", "--yes", "--offline", "--json"), "to resume"),
    # said before the providers (no key here) or the terminal (stdin is none) are asked for
    Row("resume-final-no-key", ("resume", "{A}", "--yes"), "already rejected: nothing to resume"),
    Row("resume-final-no-terminal", ("resume", "{A}"), "already rejected: nothing to resume"),
    # reads
    Row("show-unknown", ("tasks", "show", "t_nope"), "task t_nope not found"),
    Row("show-unknown-json", ("tasks", "show", "t_nope", "--json"), "task t_nope not found"),
    Row("transcript-unknown", ("tasks", "transcript", "t_nope"), "task t_nope not found"),
    Row("watch-unknown", ("tasks", "watch", "t_nope"), "task t_nope not found"),
    Row("costs-unknown", ("costs", "t_nope"), "task t_nope not found"),
    Row("list-limit-zero", ("tasks", "list", "--limit", "0"), "Invalid value for '--limit'"),
    Row("list-limit-negative", ("tasks", "list", "--limit", "-5"), "Invalid value for '--limit'"),
    Row("list-limit-word", ("tasks", "list", "--limit", "ten"), "Invalid value for '--limit'"),
    # personas and classification (files, in this process)
    Row("classify-empty", ("classify", ""), "the request is empty", daemon=False),
    Row("classify-empty-json", ("classify", " ", "--json"), "request is empty", daemon=False),
    Row("persona-show-unknown", ("personas", "show", "nope"), "unknown persona", daemon=False),
    Row("persona-new-bad-id", ("personas", "new", "Bad Id"), "not a valid persona id", False),
    Row(
        "persona-validate-missing",
        ("personas", "validate", "{F}/missing.yaml"),
        "cannot read the file",
        daemon=False,
    ),
    Row(
        "persona-validate-binary",
        ("personas", "validate", "{F}/binary.dat"),
        "cannot read the file",
        daemon=False,
    ),
    Row(
        "persona-validate-bad-tier",
        ("personas", "validate", "{F}/bad_tier.yaml"),
        "bad_tier.yaml:7: module 'm' has unknown tier 'gigantic'",
        daemon=False,
    ),
    Row(
        "persona-validate-many-problems",
        ("personas", "validate", "{F}/bad_fields.yaml"),
        "bad_fields.yaml:",
        daemon=False,
        lines=2,
    ),
    Row("secret-no-value", ("secrets", "set", "ANTHROPIC_API_KEY"), "no value given", False),
    Row("plan-empty", ("plan", "", "--offline"), "the request is empty", daemon=False),
    Row(
        "plan-bad-persona",
        ("plan", REQUEST, "--persona", "x", "--offline"),
        "unknown persona",
        False,
    ),
    Row("worker-concurrency", ("worker", "--concurrency", "0"), "--concurrency", daemon=False),
    Row("group-bad-command", ("tasks", "delete", "{A}"), "No such command 'delete'", False),
    Row("config-show-json-typo", ("config", "check", "--jsn"), "No such option: --jsn", False),
    # settings of each type, from the environment
    Row("env-int", run_(), "max_concurrency", env={"AGENTFIRM_MAX_CONCURRENCY": "many"}),
    Row("env-int-range", run_(), "is outside 1..64", env={"AGENTFIRM_MAX_CONCURRENCY": "0"}),
    Row("env-bool", run_(), "quality_revision", env={"AGENTFIRM_QUALITY_REVISION": "maybe"}),
    Row("env-decimal", run_(), "budget_usd", env={"AGENTFIRM_BUDGET_USD": "-1"}),
    Row("env-float", run_(), "provider_timeout_s", env={"AGENTFIRM_PROVIDER_TIMEOUT_S": "0"}),
    Row("env-choice", run_(), "runner", env={"AGENTFIRM_RUNNER": "gpu"}),
    Row("env-log-level", run_(), "is not a log level", env={"AGENTFIRM_LOG_LEVEL": "loud"}),
    Row("env-url", run_(), "database_url", env={"AGENTFIRM_DATABASE_URL": "mysql://db"}),
    Row("env-latency", run_(), "offline_latency_ms", env={"AGENTFIRM_OFFLINE_LATENCY_MS": "9-1"}),
    Row(
        "env-tier-chain",
        run_(),
        "is not provider:model",
        env={"AGENTFIRM_TIERS__REASONING": '["claude"]'},
    ),
    Row(
        "env-unknown-provider",
        run_(),
        "unknown provider 'nope'",
        env={"AGENTFIRM_TIERS__UTILITY": '["nope:model"]'},
    ),
    # homes and config files that cannot be used
    Row(
        "home-is-a-file",
        run_(),
        "a part of its path is a file",
        env={"AGENTFIRM_HOME": "{F}/notes.md"},
    ),
    Row(
        "home-unwritable",
        run_(),
        "cannot use /proc/agentfirm/config",
        env={"AGENTFIRM_HOME": "/proc/agentfirm"},
    ),
    Row(
        "home-config-check",
        ("config", "check"),
        "a part of its path is a file",
        daemon=False,
        env={"AGENTFIRM_HOME": "{F}/notes.md/home"},
    ),
    Row("toml-not-utf8", run_(), "is not UTF-8 text", config="budget_usd = '\udcff'"),
    Row("toml-not-utf8-check", ("config", "check"), "save it as UTF-8", False, config="x='\udcfe'"),
    Row("toml-syntax", run_(), "invalid TOML", config="budget_usd = = 3\n"),
    Row("toml-unknown-setting", run_(), "unknown setting", config="budjet_usd = 3\n"),
    Row(
        "toml-type", ("config", "show"), "is not a whole number", False, config="max_turns = 'x'\n"
    ),
    Row("toml-tier-type", run_(), "tiers.reasoning", config="[tiers]\nreasoning = 'x:y'\n"),
    Row(
        "toml-price",
        run_(),
        "'cheap' is not a number",
        config="[prices.'x:y']\ninput_per_mtok = 'cheap'\noutput_per_mtok = 1\n",
    ),
    Row(
        "toml-many-problems",
        run_(),
        "2 configuration problems",
        config="max_turns = 0\nlog_level = 'loud'\n",
        lines=3,
    ),
    Row("toml-port", ("config", "show"), "is outside 1..65535", False, config="slack_port = 7e4\n"),
    Row(
        "toml-int-range",
        ("config", "check"),
        "is outside 1..64",
        False,
        config="max_concurrency = 65\n",
    ),
]


# ---------------------------------------------------------------------------- the world
@dataclass
class World:
    home: Path
    files: Path
    env: dict[str, str]
    ids: dict[str, str]


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    """One home with a rejected task (A) and one awaiting plan approval (B), planned offline,
    prepared files, and a daemon, for the whole file."""
    root = Path(tempfile.mkdtemp(prefix="afb", dir="/tmp"))
    home, files = root / "h", root / "f"
    files.mkdir()
    (files / "folder").mkdir()
    (files / "notes.md").write_text("a note\n")
    (files / "binary.dat").write_bytes(bytes(range(256)) * 8)
    with (files / "huge.txt").open("wb") as huge:  # sparse: 6 MiB of zeros on no disk
        huge.truncate(6 * 1024 * 1024)
    persona = (
        "name: Bad tier\ndescription: d\nclassification_keywords: [x]\n"
        "modules:\n  - id: m\n    title: M\n    tier: gigantic\n    output_type: research_notes\n"
        "    brief: b\nquality_checklist: [c]\n"
    )
    (files / "bad_tier.yaml").write_text(persona)
    (files / "bad_fields.yaml").write_text(
        persona.replace("gigantic", "utility").replace("title: M", "titel: M")
    )
    env = {**clean_env(home), "AGENTFIRM_NO_DAEMON": "1"}
    ids = {}
    for name in ("A", "B"):
        planned = run_cli(env, root, "plan", REQUEST, "--offline", "--json")
        assert planned.code == 0, planned.stderr
        ids[name] = planned.json()["task_id"]
    rejected = run_cli(env, root, "reject", ids["A"])
    assert rejected.code == 0, rejected.stderr
    started = run_cli(env, root, "daemon", "start")
    assert started.code == 0, started.stderr
    try:
        yield World(home, files, env, ids)
    finally:
        stop_daemon(home)
        shutil.rmtree(root, ignore_errors=True)


def _footprint(home: Path) -> dict[str, Any]:
    """What a refused command must not change: the rows of the store and the data dir's
    files (SQLite's -wal/-shm aside)."""
    data = home / "data"
    counts: dict[str, int] = {}
    if (data / "agentfirm.db").exists():
        db = sqlite3.connect(f"file:{data / 'agentfirm.db'}?mode=ro", uri=True)
        try:
            for table in TABLES:
                counts[table] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        finally:
            db.close()
    files = sorted(
        str(p.relative_to(home))
        for p in (data.rglob("*") if data.exists() else ())
        if not p.name.endswith(("-wal", "-shm"))
    )
    return {"rows": counts, "files": files}


@dataclass
class Outcome:
    result: Result
    before: dict[str, Any]
    after: dict[str, Any]


def _run_row(world: World, row: Row, mode: str) -> Outcome:
    """Run ``row`` in ``mode``: its result and the footprints before and after, of the shared
    home and (for a ``config`` row) of its own."""
    fill = {"A": world.ids["A"], "B": world.ids["B"], "F": str(world.files)}
    argv = tuple(arg.format(**fill) if "{" in arg else arg for arg in row.argv)
    env = {**world.env, **{k: v.format(**fill) for k, v in row.env.items()}}
    env["AGENTFIRM_NO_DAEMON"] = "1" if mode == "here" else ""
    own = Path(env["AGENTFIRM_HOME"])
    if row.config is not None:  # a home of its own, holding only that config.toml
        own = world.files.parent / f"c-{row.name}"  # the same path each mode: same message
        shutil.rmtree(own, ignore_errors=True)
        (own / "config").mkdir(parents=True)
        (own / "config" / "config.toml").write_bytes(
            row.config.encode("utf-8", errors="surrogateescape")
        )
        env["AGENTFIRM_HOME"] = str(own)
    before = {"home": _footprint(world.home), "own": _footprint(own)}
    result = run_cli(env, world.files.parent, *argv, stdin=row.stdin)
    after = {"home": _footprint(world.home), "own": _footprint(own)}
    if row.config is not None:
        shutil.rmtree(own, ignore_errors=True)
    return Outcome(result, before, after)


def _cases() -> list[Any]:
    cases = []
    for row in ROWS:
        cases.append(pytest.param(row, "here", id=f"{row.name}-here"))
        if row.daemon:
            cases.append(pytest.param(row, "daemon", id=f"{row.name}-daemon"))
    return cases


@pytest.fixture(scope="module")
def outcomes(world: World, request: pytest.FixtureRequest) -> dict[tuple[str, str], Outcome]:
    """Every selected row's outcome, run up front a few rows at a time (each row's modes in
    turn: a config row's home is one path for both). Each row writes nothing, so rows running
    side by side leave each other's footprints alone; should one write, the footprints of its
    neighbours may show it too — rerun that row alone (-k NAME) to tell which."""
    from concurrent.futures import ThreadPoolExecutor

    modes: dict[str, list[str]] = {}
    rows = {row.name: row for row in ROWS}
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and "row" in params:
            wanted = modes.setdefault(params["row"].name, [])
            for mode in ("here", params["mode"]):  # a daemon row is compared with here
                if mode not in wanted:
                    wanted.append(mode)

    def run_modes(name: str) -> dict[tuple[str, str], Outcome]:
        return {(name, mode): _run_row(world, rows[name], mode) for mode in modes[name]}

    done: dict[tuple[str, str], Outcome] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        for part in pool.map(run_modes, modes):
            done.update(part)
    return done


@pytest.mark.parametrize(("row", "mode"), _cases())
def test_bad_input_is_refused_in_one_line_with_exit_2_and_nothing_written(
    outcomes: dict[tuple[str, str], Outcome], row: Row, mode: str
) -> None:
    outcome = outcomes[row.name, mode]
    result = outcome.result

    assert result.code == 2, (result.code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == row.lines, result.stderr
    match = ERROR_LINE.match(lines[0])
    assert match is not None, lines[0]
    message = "\n".join([match["message"], *lines[1:]])
    assert row.needle in message
    assert HOW_TO_FIX.search(message), f"no how-to-fix in: {message}"
    if "--json" in row.argv:
        assert json.loads(result.stdout) == {"error": message, "exit_code": 2}
    else:
        assert result.stdout == ""
    assert outcome.after == outcome.before  # no task, row, approval, reservation or file
    if mode == "daemon":  # the same words as in-process
        here = outcomes[row.name, "here"].result
        assert result.stderr == here.stderr
        assert result.stdout == here.stdout
