from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from agentfirm.log import bind_ids, configure_logging, reset_logging
from agentfirm.secrets import REDACTED, Redactor

SECRET = "registered-secret-value-42"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    reset_logging()
    root.setLevel(level)


@pytest.fixture
def redactor() -> Redactor:
    redactor = Redactor()
    redactor.add(SECRET)
    return redactor


@pytest.fixture
def log_path(tmp_path: Path, redactor: Redactor) -> Path:
    path = tmp_path / "state" / "agentfirm.log"
    configure_logging(log_path=path, redactor=redactor)
    return path


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


log = structlog.get_logger("agentfirm.test")


def test_each_event_is_one_json_line_with_the_standard_fields(log_path: Path) -> None:
    log.info("module.started", wave=2)
    [line] = lines(log_path)
    assert (line["event"], line["level"], line["logger"], line["wave"]) == (
        "module.started",
        "info",
        "agentfirm.test",
        2,
    )
    assert datetime.fromisoformat(line["ts"]).utcoffset() == timedelta(0)


def test_bound_task_id_appears_in_the_json_line(log_path: Path) -> None:
    with bind_ids(task_id="task-1", module_id="m-1"):
        log.info("module.started")
    [line] = lines(log_path)
    assert (line["task_id"], line["module_id"]) == ("task-1", "m-1")


def test_bind_ids_restores_the_previous_values(log_path: Path) -> None:
    with bind_ids(task_id="outer"):
        with bind_ids(task_id="inner", call_id="c-1"):
            pass
        log.info("after")
    [line] = lines(log_path)
    assert line["task_id"] == "outer"
    assert "call_id" not in line


def test_registered_secret_values_are_redacted_everywhere_in_the_line(log_path: Path) -> None:
    log.info(f"calling with {SECRET}", header=f"Bearer {SECRET}", nested={"k": [SECRET]})
    text = log_path.read_text()
    assert SECRET not in text
    [line] = lines(log_path)
    assert (line["event"], line["header"], line["nested"]) == (
        f"calling with {REDACTED}",
        f"Bearer {REDACTED}",
        {"k": [REDACTED]},
    )


def test_known_key_shapes_are_redacted(log_path: Path) -> None:
    log.warning("bad key", key="sk-ant-api03-unregistered0000000")
    assert lines(log_path)[0]["key"] == REDACTED


def test_secrets_in_non_string_values_are_redacted(log_path: Path) -> None:
    log.info("path", where=Path("/tmp") / SECRET)
    assert SECRET not in log_path.read_text()


def test_exception_tracebacks_are_redacted(log_path: Path) -> None:
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("call.failed")
    [line] = lines(log_path)
    assert "RuntimeError" in line["exception"]
    assert SECRET not in line["exception"]


def test_library_warnings_go_through_the_same_pipeline(log_path: Path) -> None:
    with bind_ids(task_id="task-9"):
        logging.getLogger("somelib").warning("retrying %s", SECRET)
    [line] = lines(log_path)
    assert (line["event"], line["level"], line["logger"], line["task_id"]) == (
        f"retrying {REDACTED}",
        "warning",
        "somelib",
        "task-9",
    )


def test_library_info_records_are_not_written(log_path: Path) -> None:
    logging.getLogger("somelib").info("chatty")
    log.info("ours")
    assert [line["event"] for line in lines(log_path)] == ["ours"]


def test_events_below_the_level_are_dropped(log_path: Path) -> None:
    log.debug("hidden")
    log.info("shown")
    assert [line["event"] for line in lines(log_path)] == ["shown"]


def test_configuring_twice_does_not_duplicate_output(tmp_path: Path, redactor: Redactor) -> None:
    path = tmp_path / "agentfirm.log"
    configure_logging(log_path=path, redactor=redactor)
    configure_logging(log_path=path, redactor=redactor)
    log.info("once")
    logging.getLogger("somelib").error("once too")
    assert len(lines(path)) == 2


def test_debug_also_renders_readably_on_stderr(
    tmp_path: Path, redactor: Redactor, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(log_path=tmp_path / "a.log", redactor=redactor, debug=True)
    log.info("visible.event", token=SECRET)
    err = capsys.readouterr().err
    assert "visible.event" in err
    assert SECRET not in err


def test_debug_level_writes_debug_events(tmp_path: Path, redactor: Redactor) -> None:
    path = tmp_path / "a.log"
    configure_logging(log_path=path, redactor=redactor, level="debug")
    log.debug("detail")
    assert lines(path)[0]["level"] == "debug"


def test_a_log_file_on_a_full_disk_puts_no_traceback_on_stderr(
    redactor: Redactor, capsys: pytest.CaptureFixture[str]
) -> None:
    """/dev/full answers every write with ENOSPC, as a full disk does (found by test_disk_full)."""
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full")
    configure_logging(log_path=full, redactor=redactor)

    structlog.get_logger("agentfirm.test").warning("disk.full", path="x")

    assert capsys.readouterr().err == ""
