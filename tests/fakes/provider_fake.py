"""What the three provider fakes share: a route, a default answer, and one helper per fault.

Each protocol subclass says how its success and error bodies look; the helpers here turn that into
the scripted faults the router must survive (429 with retry-after, 500, 503, hangs, resets,
malformed bodies, bad keys)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from tests.fakes.http_fake import Recorded, Reply, Responder, ScriptedHTTPServer
from tests.fakes.metering import Bill, Billed, Rates, count_tokens

MALFORMED_BODY = b'{"id": "resp_01", "content": [{"type": "te'

ScriptedCall = tuple[str, str, "dict[str, Any] | str"]
"""One tool call a fake asks for: ``(id, name, arguments)``."""


class ProviderFake(ScriptedHTTPServer, ABC):
    """Base of the protocol fakes. Requests off ``route`` get a 404 in the protocol's error shape
    (so a wrong URL in a provider shows up as such). With an empty script every request gets
    ``self.ok()``. ``rates``: each model's prices, for ``bill.nano``."""

    route: re.Pattern[str]

    def __init__(
        self, *, base_delay_s: float = 0.0, rates: Mapping[str, Rates] | None = None
    ) -> None:
        super().__init__(self._answer, base_delay_s=base_delay_s)
        self.bill = Bill(rates)
        count_tokens("warm")  # load the vocabulary now, not while a client waits

    # -- protocol specifics (subclasses) -----------------------------------------------------
    @abstractmethod
    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        """The protocol's 200 body: ``data`` as structured output when given, else ``text``."""

    @abstractmethod
    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The protocol's error body for ``status``."""

    @abstractmethod
    def tool_call_body(self, request: Recorded, calls: list[ScriptedCall]) -> dict[str, Any]:
        """The protocol's 200 body asking for ``calls`` (several: parallel calls)."""

    @abstractmethod
    def input_tokens(self, body: dict[str, Any]) -> int:
        """What the service counts as the input of request ``body``."""

    @abstractmethod
    def max_output(self, body: dict[str, Any]) -> int:
        """The request's cap on output tokens."""

    @abstractmethod
    def billed_of(self, request: Recorded, reply: dict[str, Any]) -> Billed | None:
        """The usage a success ``reply`` reports, None when it has none."""

    def metered(self, request: Recorded, content: str) -> Billed:
        """The usage of answering ``request`` with ``content``, counted as the service does."""
        body = request.body if isinstance(request.body, dict) else {}
        return Billed(
            model=self.model_of(request),
            input_tokens=self.input_tokens(body),
            output_tokens=min(count_tokens(content), self.max_output(body)),
        )

    def model_of(self, request: Recorded) -> str:
        body = request.body if isinstance(request.body, dict) else {}
        return str(body.get("model", "unknown-model"))

    # -- replies -----------------------------------------------------------------------------
    def ok(self, text: str = "All done.", *, usage: Any = None, delay_s: float = 0.0) -> Responder:
        """A successful text answer; ``usage`` is the protocol's usage (see the subclass)."""

        def respond(request: Recorded) -> Reply:
            body = self.success_body(request, text=text, data=None, usage=usage)
            return Reply(200, body, delay_s=delay_s)

        return respond

    def structured(self, data: dict[str, Any], *, usage: Any = None) -> Responder:
        """A successful answer carrying ``data`` the way the protocol returns structured
        output."""

        def respond(request: Recorded) -> Reply:
            return Reply(200, self.success_body(request, text=None, data=data, usage=usage))

        return respond

    def tool_calls(self, *calls: ScriptedCall) -> Responder:
        """An answer asking for tools, each ``(id, name, arguments)``; ``arguments`` as a string
        is sent as it is (malformed JSON on protocols that carry a string)."""

        def respond(request: Recorded) -> Reply:
            return Reply(200, self.tool_call_body(request, list(calls)))

        return respond

    def error(
        self, status: int, message: str, *, headers: Mapping[str, str] | None = None
    ) -> Reply:
        return Reply(status, self.error_body(status, message), headers=dict(headers or {}))

    def rate_limited(self, retry_after: float | None = 2) -> Reply:
        headers = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
        return self.error(429, "Rate limit exceeded, please slow down.", headers=headers)

    def server_error(self) -> Reply:
        return self.error(500, "Internal server error.")

    def unavailable(self) -> Reply:
        return self.error(503, "The service is temporarily unavailable.")

    def bad_request(self, message: str = "max_tokens: must be at most 8192") -> Reply:
        return self.error(400, message)

    def unauthorized(self) -> Reply:
        return self.error(401, "invalid x-api-key")

    def forbidden(self) -> Reply:
        return self.error(403, "Your API key does not have permission to use this model.")

    @staticmethod
    def hang(seconds: float) -> Reply:
        """Answer only after ``seconds`` (past the client's timeout, it never arrives)."""
        return Reply(200, {}, delay_s=seconds)

    @staticmethod
    def connection_reset() -> Reply:
        return Reply(reset=True)

    @staticmethod
    def malformed() -> Reply:
        """A 200 whose JSON body is cut short."""
        return Reply(200, MALFORMED_BODY)

    # -- serving -----------------------------------------------------------------------------
    def reset(self) -> None:
        super().reset()
        self.bill.clear()

    def _received(self, request: Recorded, reply: Reply) -> None:
        # Billed on receipt: a service bills the answer it generates whether or not the client
        # is still there to read it. Errors and dropped connections are not billed, nor is a
        # body cut short (its sender died mid-request): no service runs a model on half a JSON.
        if reply.status != 200 or reply.reset or not self.route.fullmatch(request.path):
            return
        if not isinstance(request.body, dict):
            return
        billed = self.billed_of(request, reply.body) if isinstance(reply.body, dict) else None
        billed = billed if billed is not None else self.metered(request, "All done.")
        self.bill.add(billed)
        self._kept(request, reply, billed)

    def _kept(self, request: Recorded, reply: Reply, billed: Billed) -> None:
        """A request just billed: a protocol that keeps a record of its calls keeps it here,
        on receipt like the bill (OpenAI's stored completions)."""

    def _answer(self, request: Recorded) -> Reply:
        if not self.route.fullmatch(request.path):
            return self.error(404, f"no route for {request.method} {request.path}")
        return self.ok()(request)
