"""Provider failures, sorted by what the router does about them.

Providers raise these (never their SDK's own exceptions), so the router decides fallback from the
class alone: retry then fall back, fail, or take the provider out for the rest of the run.
"""

from __future__ import annotations

from agentfirm.errors import AgentfirmError, BudgetExceeded, ProviderError

__all__ = [
    "BudgetExceeded",
    "FatalProviderError",
    "ProviderAuthError",
    "ProviderError",
    "ProviderTimeout",
    "RetryableProviderError",
    "SchemaError",
]


class RetryableProviderError(ProviderError):
    """A transient failure (429, 5xx, timeout, connection): retry once, then try the next entry.
    ``retry_after`` is the provider's requested wait in seconds, when it sent one."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class ProviderTimeout(RetryableProviderError):
    """The provider did not answer in time and the client hung up. Unlike other transient
    failures the request did reach the provider, which bills it all the same: the router books
    such an attempt at its reservation (``cancelled``, an upper bound)."""


class FatalProviderError(ProviderError):
    """The provider refused the request itself (400): another attempt would fail the same way.
    ``message`` is the provider's own explanation."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderAuthError(ProviderError):
    """The provider rejected its key (401/403). The router stops using that provider; the message
    names the environment variable / secret to fix."""

    def __init__(
        self, *, provider: str, key_env: str, status: int | None = None, detail: str = ""
    ) -> None:
        code = f" ({status})" if status else ""
        reason = f": {detail}" if detail else ""
        super().__init__(
            f"{provider} rejected its API key{code}{reason}",
            hint=f"set a valid {key_env}: agentfirm secrets set {key_env}",
        )
        self.provider = provider
        self.key_env = key_env
        self.status = status


class SchemaError(AgentfirmError):
    """Model output is not JSON matching the requested schema. ``str(err)`` says what is wrong,
    phrased so it can be sent back to the model as a repair instruction."""
