"""What the daemon's API answers to requests it refuses: the words a person reads (the same as
in-process), ``Allow`` on a 405, a ceiling on request bodies, and a schema that says what it
takes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from agentfirm.cli.context import parse_budget as cli_budget
from agentfirm.errors import BadInput
from agentfirm.money import parse_budget
from tests.integration.test_daemon_api import REQUEST, Api, serving

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with serving(tmp_path / "home") as served:
        yield served


def _refusal(parse: Any, value: str) -> str:
    with pytest.raises(BadInput) as refused:
        parse(value)
    return str(refused.value)


@pytest.mark.parametrize("budget", ["2000000", 2000000, "0", "lots", ""])
async def test_a_budget_is_refused_in_the_core_s_words(api: Api, budget: Any) -> None:
    response = await api.http.post(
        "/tasks", json={"request": REQUEST, "offline": True, "budget_usd": budget}
    )

    assert response.status_code == 400
    assert response.json()["error"] == _refusal(partial(parse_budget, name="budget_usd"), budget)
    assert (await api.http.get("/tasks")).json() == []


def test_a_run_without_the_daemon_refuses_a_budget_over_the_ceiling_too() -> None:
    assert _refusal(cli_budget, "2000000") == (
        "--budget '2000000' is over the $1,000,000 limit (e.g. --budget 2.50)"
    )


async def test_an_empty_request_gets_the_in_process_words(api: Api) -> None:
    response = await api.http.post("/tasks", json={"request": "", "offline": True})

    assert response.status_code == 400
    assert response.json()["error"].startswith("the request is empty (")


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/tasks?limit=0", None, "query parameter limit must be at least 1"),
        ("GET", "/tasks?limit=lots", None, "query parameter limit must be a valid integer"),
        ("POST", "/tasks", {}, "field request is missing: add it"),
        ("POST", "/tasks", {"request": "x" * 20_001}, "field request is too long: at most 20000"),
        ("POST", "/tasks", {"request": REQUEST, "colour": "red"}, "field colour is not one"),
        ("POST", "/tasks", [1], "the request body must be a JSON object"),
        ("GET", "/nope", None, "no endpoint GET /nope: see GET /openapi.json"),
    ],
)
async def test_refusals_say_what_and_where_without_the_parser_s_words(
    api: Api, method: str, path: str, body: Any, expected: str
) -> None:
    response = await api.http.request(method, path, json=body)

    assert 400 <= response.status_code < 500
    message = response.json()["error"]
    assert message.startswith(expected)
    for jargon in ("Input should", "body.", "query.", "Not Found", "Field required"):
        assert jargon not in message


async def test_a_405_says_which_methods_the_path_takes(api: Api) -> None:
    response = await api.http.delete("/tasks")

    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "DELETE /tasks is not allowed: use" in response.json()["error"]


async def test_the_schema_excludes_what_the_daemon_refuses_as_a_budget(api: Api) -> None:
    schema = (await api.http.get("/openapi.json")).json()
    budget = schema["components"]["schemas"]["TaskSubmission"]["properties"]["budget_usd"]

    for good in ("2.50", 2.5, "$3", None):
        jsonschema.validate(good, budget)
    for bad in ("", "lots", 0, -1, 2_000_000, True):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, budget)


async def test_a_body_over_the_ceiling_is_refused_before_it_is_read_whole(api: Api) -> None:
    total = 64 * 1024 * 1024
    chunk = b"x" * (64 * 1024)
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < total:
            sent += len(chunk)
            yield chunk

    try:
        response = await api.http.post(
            "/tasks", content=body(), headers={"Content-Type": "application/json"}
        )
    except httpx.TransportError:  # the daemon hung up on the rest of the body
        response = None

    assert sent < total
    if response is not None:
        assert response.status_code == 413
        assert "larger than 4 MB" in response.json()["error"]
    assert (await api.http.get("/health")).json()["ok"] is True
