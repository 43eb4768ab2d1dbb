"""schemathesis against the running daemon's own OpenAPI document, over its Unix socket: every
operation, valid and invalid input, bounded in examples. No 5xx, no crash, no secret in any body."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

CANARY = "sk-ant-api03-CANARY" + "9" * 40
_SCRUB = ("AGENTFIRM_", "ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "GITHUB_", "SLACK_")
EXAMPLES = 30


@pytest.fixture(scope="module")
def daemon() -> Iterator[tuple[Path, dict[str, str]]]:
    """A daemon started the way users start it, on a short private home (socket paths are
    limited to about 100 bytes); stopped and removed afterwards."""
    home = Path(tempfile.mkdtemp(prefix="af", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env |= {"AGENTFIRM_HOME": str(home), "ANTHROPIC_API_KEY": CANARY, "NO_COLOR": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentfirm", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    started = cli("daemon", "start")
    assert started.returncode == 0, started.stderr
    try:
        yield home / "run" / "agentfirm.sock", env
    finally:
        cli("daemon", "stop")
        shutil.rmtree(home, ignore_errors=True)


def _send(http: httpx.Client, kwargs: dict[str, Any]) -> httpx.Response:
    """Send schemathesis's requests-style arguments with httpx (which speaks Unix sockets)."""
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body["content" if isinstance(data, str | bytes) else "data"] = data
    url = httpx.URL(kwargs["url"])
    return http.request(
        kwargs["method"],
        url.raw_path.decode("ascii"),
        headers={k: str(v) for k, v in dict(kwargs.get("headers") or {}).items()},
        params=kwargs.get("params") or None,
        **body,
    )


def _fuzz(http: httpx.Client, strategy: st.SearchStrategy[Any], seen: list[str]) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = _send(http, case.as_transport_kwargs(base_url="http://daemon"))
        seen.append(f"{case.method} {case.path} {response.status_code}")
        assert response.status_code < 500, (case.method, case.path, response.text)
        assert CANARY not in response.text
        assert "CANARY" not in response.text
        case.validate_response(response, checks=[not_a_server_error])

    run()


def test_fuzzing_every_operation_finds_no_server_error_and_no_secret(
    daemon: tuple[Path, dict[str, str]],
) -> None:
    sock, _env = daemon
    transport = httpx.HTTPTransport(uds=str(sock))
    with httpx.Client(transport=transport, base_url="http://daemon", timeout=10) as http:
        schema = schemathesis.openapi.from_dict(http.get("/openapi.json").json())
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 11
        seen: list[str] = []

        for operation in operations:
            _fuzz(http, operation.as_strategy(GenerationMode.POSITIVE), seen)
            # an operation without parameters or body has no invalid input to send
            with contextlib.suppress(Unsatisfiable):
                _fuzz(http, operation.as_strategy(GenerationMode.NEGATIVE), seen)

        assert http.get("/health").json()["ok"] is True  # still up after all of it
    called = {line.rsplit(" ", 1)[0] for line in seen}
    assert called == {f"{op.method.upper()} {op.path}" for op in operations}
    assert any(line.endswith(" 422") for line in seen)  # invalid input did reach the daemon


def test_the_socket_refuses_other_users(daemon: tuple[Path, dict[str, str]]) -> None:
    sock, _env = daemon

    mode = sock.stat().st_mode & 0o777
    parent = sock.parent.stat().st_mode & 0o777

    assert mode == 0o600
    assert parent == 0o700
    assert sock.stat().st_uid == os.getuid()


def test_a_stale_socket_and_pidfile_do_not_stop_a_new_daemon(
    daemon: tuple[Path, dict[str, str]],
) -> None:
    sock, env = daemon
    run = sock.parent

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentfirm", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    pid = int((run / "agentfirm.pid").read_text())
    os.kill(pid, 9)  # dies without cleaning up: the socket and pidfile stay behind
    while cli("daemon", "status", "--json").stdout.count('"running": true'):
        time.sleep(0.05)
    assert sock.exists()

    restarted = cli("daemon", "start")

    assert restarted.returncode == 0, restarted.stderr
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://d") as http:
        assert http.get("/health").json()["pid"] != pid
