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

MALFORMED_BODY = b'{"id": "resp_01", "content": [{"type": "te'


class ProviderFake(ScriptedHTTPServer, ABC):
    """Base of the protocol fakes. Requests off ``route`` get a 404 in the protocol's error shape
    (so a wrong URL in a provider shows up as such). With an empty script every request gets
    ``self.ok()``."""

    route: re.Pattern[str]

    def __init__(self, *, base_delay_s: float = 0.0) -> None:
        super().__init__(self._answer, base_delay_s=base_delay_s)

    # -- protocol specifics (subclasses) -----------------------------------------------------
    @abstractmethod
    def success_body(
        self, request: Recorded, *, text: str | None, data: dict[str, Any] | None, usage: Any
    ) -> dict[str, Any]:
        """The protocol's 200 body: ``data`` as structured output when given, else ``text``."""

    @abstractmethod
    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The protocol's error body for ``status``."""

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
    def _answer(self, request: Recorded) -> Reply:
        if not self.route.fullmatch(request.path):
            return self.error(404, f"no route for {request.method} {request.path}")
        return self.ok()(request)
