"""Secrets: the OS keyring first, environment variables second, and the redaction registry that
scrubs every secret value read (and anything shaped like a provider key) from logs and payloads."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog

from agentfirm.errors import BadInput, NotFound, SecretStoreError

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

log = structlog.get_logger(__name__)

REDACTED = "[REDACTED]"
MIN_SECRET_LEN = 8

# Known key shapes. The look-behind keeps ids such as ``task-…`` from matching ``sk-``.
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-ant-[A-Za-z0-9_-]{8,}"
    r"|sk-[A-Za-z0-9_-]{16,}"
    r"|AIza[A-Za-z0-9_-]{20,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|xapp-[A-Za-z0-9-]{10,}"
    r")"
)

# Every shape above starts with one of these. Looking for them alone first is several times
# faster than the shapes' pattern, whose look-behind makes ``re`` try every position of the text:
# some 40 us a KB, and a module's prompt carries tens of KB.
_SHAPE_STARTS = tuple(
    re.compile(start)
    for start in (r"sk-", r"AIza", r"gh[pousr]_", r"github_pat_", r"xox[abpr]-", r"xapp-")
)

_T = TypeVar("_T")


class Redactor:
    """Registry of secret values. ``redact`` replaces each registered value and every known key
    shape with ``[REDACTED]``. Thread-safe: log handlers call it from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def add(self, value: str) -> None:
        """Register a secret value. Values shorter than 8 characters are ignored: scrubbing them
        would mangle ordinary text and they are not real keys."""
        if len(value) < MIN_SECRET_LEN or value in self._values:
            return
        with self._lock:
            values = self._values | {value}
            # Longest first, so a value containing another is replaced whole.
            ordered = sorted(values, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
            self._values = values

    def redact(self, text: str) -> str:
        """``text`` with every registered value and known key shape replaced."""
        pattern = self._pattern  # one read: a concurrent ``add`` swaps it whole
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        if not any(start.search(text) for start in _SHAPE_STARTS):
            return text
        return _KEY_SHAPES.sub(REDACTED, text)

    def redact_obj(self, obj: _T) -> _T:
        """A copy of ``obj`` with every string inside dicts, lists and tuples redacted (keys
        too); other values are returned as they are."""
        return self._walk(obj)  # type: ignore[no-any-return]

    def _walk(self, obj: Any) -> Any:
        if isinstance(obj, str):
            return self.redact(obj)
        if isinstance(obj, Mapping):
            return {self._walk(k): self._walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._walk(item) for item in obj]
        if isinstance(obj, tuple):
            return tuple(self._walk(item) for item in obj)
        return obj


SecretSource = Literal["keyring", "env"]

KNOWN: tuple[str, ...] = (
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AGENTFIRM_OPENAI_COMPAT_API_KEY",
    "GITHUB_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_SIGNING_SECRET",
)

_NAME = re.compile(r"^[A-Z][A-Z0-9_]+$")
_NO_BACKEND_HINT = (
    "set {name} in the environment instead, or install a keyring backend such as keyrings.alt"
)


class SecretStore:
    """Reads secrets from the OS keyring, then the environment. Every value read is registered
    with the redactor; nothing is cached, so a rotated key takes effect on the next read."""

    KNOWN = KNOWN

    def __init__(
        self,
        redactor: Redactor,
        *,
        env: Mapping[str, str],
        backend: KeyringBackend | None = None,
        service: str = "agentfirm",
    ) -> None:
        self._redactor = redactor
        self._env = env
        self._backend = backend
        self._service = service

    def get(self, name: str) -> str | None:
        """The secret's value (keyring first, then env), or ``None`` when neither has it."""
        found = self._lookup(name)
        return found[0] if found else None

    def source(self, name: str) -> SecretSource | None:
        """Where ``get`` would read ``name`` from, or ``None`` when it has no value."""
        found = self._lookup(name)
        return found[1] if found else None

    def set(self, name: str, value: str) -> None:
        """Store ``value`` in the keyring. Raises ``SecretStoreError`` when no usable keyring
        backend exists (e.g. headless Linux without a Secret Service)."""
        _check_name(name)
        if not value.strip():
            raise BadInput(f"secret {name} is empty", hint="pass the key's value")
        self._redactor.add(value)
        backend = self._keyring()
        _refuse_fail_backend(backend, name, "store")
        try:
            backend.set_password(self._service, name, value)
        except Exception as exc:
            raise SecretStoreError(
                self._redactor.redact(
                    f"cannot store {name} in the keyring ({_describe(backend)}: {exc})"
                ),
                hint=_NO_BACKEND_HINT.format(name=name),
            ) from None

    def delete(self, name: str) -> None:
        """Remove ``name`` from the keyring. Raises ``NotFound`` when the keyring does not hold
        it (an env var cannot be removed from here: the message says so)."""
        _check_name(name)
        import keyring.errors

        backend = self._keyring()
        _refuse_fail_backend(backend, name, "delete")
        try:
            backend.delete_password(self._service, name)
        except keyring.errors.PasswordDeleteError:
            hint = (
                f"it comes from the environment: unset {name} there" if name in self._env else None
            )
            raise NotFound(f"secret {name} is not in the keyring", hint=hint) from None
        except Exception as exc:
            raise SecretStoreError(
                f"cannot delete {name} from the keyring ({_describe(backend)}: {exc})",
                hint="check that the keyring is unlocked",
            ) from None

    def rotate(self, name: str, value: str) -> None:
        """Replace ``name`` with a new value. The old value stays registered for redaction, so
        anything still holding it is scrubbed."""
        self.get(name)  # registers the old value
        self.set(name, value)

    def list(self) -> list[tuple[str, str]]:
        """``(name, source)`` for every known secret that has a value. Never the values."""
        listed: list[tuple[str, str]] = []
        for name in KNOWN:
            source = self.source(name)
            if source is not None:
                listed.append((name, source))
        return listed

    def _lookup(self, name: str) -> tuple[str, SecretSource] | None:
        _check_name(name)
        found: tuple[str, SecretSource] | None = None
        stored = self._read_keyring(name)
        if stored:
            found = (stored, "keyring")
        elif self._env.get(name):
            found = (self._env[name], "env")
        if found is not None:
            self._redactor.add(found[0])
        return found

    def _read_keyring(self, name: str) -> str | None:
        try:
            value: str | None = self._keyring().get_password(self._service, name)
        except Exception as exc:
            # A locked or missing keyring must not stop a run that has the key in env.
            log.debug("keyring.read_failed", secret=name, error=type(exc).__name__)
            return None
        return value

    def _keyring(self) -> KeyringBackend:
        if self._backend is None:
            import keyring

            self._backend = keyring.get_keyring()
        return self._backend


def _check_name(name: str) -> None:
    if name in KNOWN or _NAME.fullmatch(name):
        return
    raise BadInput(
        f"secret name {name!r} is not valid",
        hint="use an upper-case env-var style name such as " + ", ".join(KNOWN[:2]),
    )


def _describe(backend: KeyringBackend) -> str:
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _refuse_fail_backend(backend: KeyringBackend, name: str, action: str) -> None:
    from keyring.backends import fail

    if isinstance(backend, fail.Keyring):
        raise SecretStoreError(
            f"cannot {action} {name}: no keyring backend is available",
            hint=_NO_BACKEND_HINT.format(name=name),
        )
