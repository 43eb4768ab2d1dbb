"""The client of the daemon's API over its Unix socket, with a sync face (``DaemonClient``: the
CLI, scripts) and an async one (``AsyncDaemonClient``: the TUI, the Slack bridge) over one request
builder (``calls``), as httpx has ``Client`` and ``AsyncClient`` over ``BaseClient``.

Each endpoint is named once (``_Endpoints``): on the sync face it returns the answer, on the async
face an awaitable of it. Errors come back as the core's: ``NotFound`` (404), ``BadInput`` (other
4xx, or a request the daemon would refuse) and ``DaemonError`` (5xx, or no daemon answers) — each
with the daemon's one-line message.

httpx loads on the first request, not on import: a front end imports this before its first frame.
The sync face sends plain requests with ``unix_http`` (importing httpx took longer than importing
typer, and ``http.client`` half as long, for the one request a CLI command makes); httpx streams
its events.
Starting a daemon is the front end's business (``agentfirm.daemon.process``): a client is given
the socket of one.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Self, TypeVar, overload
from urllib.parse import urlencode

from agentfirm.api import calls, unix_http
from agentfirm.api.calls import Call
from agentfirm.api.wire import BASE_URL, Answer, DaemonError, raise_for, unreachable

if TYPE_CHECKING:
    import httpx

P = ParamSpec("P")
T = TypeVar("T")


class Endpoint(Generic[P, T]):
    """An endpoint of both faces: ``build`` makes its ``Call``; the face it is read from sends
    it."""

    def __init__(self, build: Callable[P, Call[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, client: DaemonClient, owner: type | None = None) -> Callable[P, T]: ...

    @overload
    def __get__(
        self, client: AsyncDaemonClient, owner: type | None = None
    ) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, client: _Face, owner: type | None = None) -> Callable[P, Any]:
        def send(*args: P.args, **kwargs: P.kwargs) -> Any:
            return client.send(self.build(*args, **kwargs))

        return send


class _Face(ABC):
    """What both faces share: the socket, the timeout, the endpoints, and reading an answer."""

    def __init__(self, socket: Path | str, *, timeout: float = 30.0) -> None:
        self.socket = Path(socket)
        self.timeout = timeout

    @abstractmethod
    def send(self, call: Call[Any]) -> Any:
        """Send ``call`` to the daemon: the sync face answers, the async face an awaitable."""

    def _lost(self, err: Exception) -> DaemonError:
        return unreachable(self.socket, err)

    @staticmethod
    def _request(call: Call[Any]) -> dict[str, Any]:
        """httpx's arguments for ``call``."""
        return {
            "method": call.method,
            "url": call.path,
            "params": dict(call.params),
            "json": call.json(),
        }

    @staticmethod
    def _stream_timeout() -> httpx.Timeout:
        import httpx

        # Live events may be minutes apart: only connecting is timed.
        return httpx.Timeout(10.0, read=None)

    @staticmethod
    def _answer(call: Call[T], response: Answer) -> T:
        raise_for(response)
        return call.read(response.json())

    @staticmethod
    def _event(line: str) -> dict[str, Any] | None:
        return json.loads(line) if line.strip() else None

    health = Endpoint(calls.health)
    tasks = Endpoint(calls.tasks)
    task = Endpoint(calls.task)
    costs = Endpoint(calls.costs)
    approvals = Endpoint(calls.approvals)
    artifacts = Endpoint(calls.artifacts)
    artifact = Endpoint(calls.artifact)
    transcript = Endpoint(calls.transcript)
    personas = Endpoint(calls.personas)
    providers = Endpoint(calls.providers)
    submission_fields = Endpoint(calls.submission_fields)
    submit = Endpoint(calls.submit)
    decide = Endpoint(calls.decide)
    resume = Endpoint(calls.resume)
    cancel = Endpoint(calls.cancel)
    reject = Endpoint(calls.reject)


class _Reply:
    """An answer read by ``unix_http``, with the parts of httpx's ``Response`` that
    ``raise_for`` and ``_answer`` read."""

    def __init__(self, status_code: int, reason_phrase: str, content: bytes) -> None:
        self.status_code = status_code
        self.reason_phrase = reason_phrase
        self.text = content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.text)


def _query(params: Mapping[str, Any]) -> str:
    """``params`` as httpx encodes them: booleans in lower case, None left out."""
    pairs = [
        (k, str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in params.items()
        if v is not None
    ]
    return "?" + urlencode(pairs) if pairs else ""


class DaemonClient(_Face):
    """The daemon at ``socket``: each request on a connection of its own (a Unix socket connects
    in microseconds; nothing to pool). Use as a context manager, or ``close``."""

    def __init__(self, socket: Path | str, *, timeout: float = 30.0) -> None:
        super().__init__(socket, timeout=timeout)
        self._stream_client: httpx.Client | None = None

    @property
    def _http(self) -> httpx.Client:
        """httpx, for streaming events only: loaded when first asked for."""
        if self._stream_client is None:
            import httpx

            self._stream_client = httpx.Client(
                # No TLS over a Unix socket: verify=False spares loading the CA bundle.
                transport=httpx.HTTPTransport(uds=str(self.socket), verify=False),
                base_url=BASE_URL,
                timeout=self.timeout,
            )
        return self._stream_client

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._stream_client is not None:
            self._stream_client.close()

    def send(self, call: Call[T]) -> T:
        """The answer to ``call``."""
        body = call.json()
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            answer = unix_http.request(
                self.socket,
                call.method,
                call.path + _query(call.params),
                headers=headers,
                body=content,
                timeout=self.timeout,
            )
        except OSError as err:
            raise self._lost(err) from err
        return self._answer(call, _Reply(answer.status, answer.reason, answer.content))

    def events(self, task_id: str, *, after_seq: int = 0) -> Iterator[dict[str, Any]]:
        """The task's events after ``after_seq``, then live ones; ends when the task is final
        (or the daemon stops: reconnect with the last ``seq`` seen)."""
        import httpx

        request = self._request(calls.events(task_id, after_seq=after_seq))
        try:
            with self._http.stream(**request, timeout=self._stream_timeout()) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for(response)
                yield from filter(None, map(self._event, response.iter_lines()))
        except (httpx.TransportError, OSError) as err:
            raise self._lost(err) from err

    def wait_for_approval(
        self, task_id: str, *, kind: str | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """The task's first pending approval (of ``kind``), polling until it is asked. Raises
        ``DaemonError`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            for approval in self.approvals(task_id, pending=True):
                if kind is None or approval["kind"] == kind:
                    return approval
            if time.monotonic() > deadline:
                raise DaemonError(f"task {task_id} asked no {kind or ''} approval in {timeout:g}s")
            time.sleep(0.05)


class AsyncDaemonClient(_Face):
    """One connection pool to the daemon at ``socket``, opened on first use (httpx loads then);
    ``aclose`` when done, or use as an async context manager."""

    def __init__(self, socket: Path | str, *, timeout: float = 30.0) -> None:
        super().__init__(socket, timeout=timeout)
        self._client: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                transport=httpx.AsyncHTTPTransport(uds=str(self.socket)),
                base_url=BASE_URL,
                timeout=self.timeout,
            )
        return self._client

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def send(self, call: Call[T]) -> T:
        """The answer to ``call``."""
        import httpx

        try:
            response = await self._http.request(**self._request(call))
        except (httpx.TransportError, OSError) as err:
            raise self._lost(err) from err
        return self._answer(call, response)

    async def events(self, task_id: str, *, after_seq: int = 0) -> AsyncIterator[dict[str, Any]]:
        """The task's events after ``after_seq``, then live ones; ends when the task is final or
        the daemon stops (reconnect with the last ``seq`` seen). Raises ``DaemonError`` when the
        connection fails or breaks."""
        import httpx

        call = calls.events(task_id, after_seq=after_seq)
        try:
            stream = self._http.stream(**self._request(call), timeout=self._stream_timeout())
            async with stream as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for(response)
                async for line in response.aiter_lines():
                    if (event := self._event(line)) is not None:
                        yield event
        except (httpx.TransportError, OSError) as err:
            raise self._lost(err) from err
