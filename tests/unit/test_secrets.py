from __future__ import annotations

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import KeyringLocked, PasswordDeleteError

from agentfirm.errors import BadInput, NotFound, SecretStoreError
from agentfirm.secrets import REDACTED, Redactor, SecretStore

ANTHROPIC = "sk-ant-api03-keyringvalue0000"
ENV_VALUE = "env-value-for-anthropic"


class MemoryKeyring(KeyringBackend):
    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


class LockedKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise KeyringLocked("locked")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise KeyringLocked("the collection is locked")


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture
def failing() -> KeyringBackend:
    return fail.Keyring()  # type: ignore[no-untyped-call]


@pytest.fixture
def memory() -> MemoryKeyring:
    return MemoryKeyring()


def store(
    redactor: Redactor, backend: KeyringBackend, env: dict[str, str] | None = None
) -> SecretStore:
    return SecretStore(redactor, env=env or {}, backend=backend)


# --- Redactor ---


def test_redact_replaces_registered_values(redactor: Redactor) -> None:
    redactor.add("correct-horse-battery")
    assert redactor.redact("key=correct-horse-battery;") == f"key={REDACTED};"


def test_redact_ignores_values_shorter_than_eight_chars(redactor: Redactor) -> None:
    redactor.add("short")
    assert redactor.redact("a short note") == "a short note"


@pytest.mark.parametrize(
    "key",
    [
        "sk-ant-api03-abcdefghijklmnop",
        "sk-proj-abcdefghijklmnopqrstuv",
        "AIzaSyA1234567890abcdefghijklmnop",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "gho_abcdefghijklmnopqrstuvwxyz0123456789",
        "ghu_abcdefghijklmnopqrstuvwxyz0123456789",
        "ghs_abcdefghijklmnopqrstuvwxyz0123456789",
        "ghr_abcdefghijklmnopqrstuvwxyz0123456789",
        "github_pat_11ABCDEFG0123456789_abcdefghij",
        "xoxb-1234567890-abcdefghijkl",
        "xoxp-1234567890-abcdefghijkl",
        "xoxa-1234567890-abcdefghijkl",
        "xoxr-1234567890-abcdefghijkl",
        "xapp-1-A0123456-abcdefghijkl",
    ],
)
def test_redact_replaces_known_key_shapes(redactor: Redactor, key: str) -> None:
    assert redactor.redact(f"using {key} now") == f"using {REDACTED} now"


def test_a_key_deep_in_a_long_prompt_is_replaced(redactor: Redactor) -> None:
    prose = "The market for cargo bikes grew 23% in 2024, led by task-0123456789abcdefgh. " * 300
    text = f"{prose}key: ghs_abcdefghijklmnopqrstuvwxyz0123456789\n{prose}"
    assert redactor.redact(text) == f"{prose}key: {REDACTED}\n{prose}"
    assert redactor.redact(prose) == prose


def test_redact_leaves_ids_that_merely_contain_sk_dash(redactor: Redactor) -> None:
    text = "task-0123456789abcdef0123"
    assert redactor.redact(text) == text


def test_redact_obj_walks_nested_structures(redactor: Redactor) -> None:
    redactor.add("nested-secret-value")
    scrubbed = redactor.redact_obj({"a": ["x nested-secret-value", ("nested-secret-value", 3)]})
    assert scrubbed == {"a": [f"x {REDACTED}", (REDACTED, 3)]}


# --- SecretStore ---


def test_get_prefers_the_keyring_over_env(redactor: Redactor, memory: MemoryKeyring) -> None:
    memory.set_password("agentfirm", "ANTHROPIC_API_KEY", ANTHROPIC)
    secrets = store(redactor, memory, {"ANTHROPIC_API_KEY": ENV_VALUE})
    assert (secrets.get("ANTHROPIC_API_KEY"), secrets.source("ANTHROPIC_API_KEY")) == (
        ANTHROPIC,
        "keyring",
    )


def test_get_falls_back_to_env(redactor: Redactor, memory: MemoryKeyring) -> None:
    secrets = store(redactor, memory, {"ANTHROPIC_API_KEY": ENV_VALUE})
    assert (secrets.get("ANTHROPIC_API_KEY"), secrets.source("ANTHROPIC_API_KEY")) == (
        ENV_VALUE,
        "env",
    )


def test_get_returns_none_when_nothing_has_the_secret(
    redactor: Redactor, memory: MemoryKeyring
) -> None:
    secrets = store(redactor, memory)
    assert (secrets.get("GITHUB_TOKEN"), secrets.source("GITHUB_TOKEN")) == (None, None)


def test_get_falls_back_to_env_when_the_keyring_raises(redactor: Redactor) -> None:
    secrets = store(redactor, LockedKeyring(), {"GITHUB_TOKEN": ENV_VALUE})
    assert secrets.get("GITHUB_TOKEN") == ENV_VALUE


def test_get_with_the_fail_backend_reads_env(redactor: Redactor, failing: KeyringBackend) -> None:
    secrets = store(redactor, failing, {"GITHUB_TOKEN": ENV_VALUE})
    assert secrets.source("GITHUB_TOKEN") == "env"


def test_every_value_read_is_registered_for_redaction(
    redactor: Redactor, memory: MemoryKeyring
) -> None:
    store(redactor, memory, {"OPENAI_API_KEY": ENV_VALUE}).get("OPENAI_API_KEY")
    assert redactor.redact(ENV_VALUE) == REDACTED


def test_set_then_get_reads_the_new_value(redactor: Redactor, memory: MemoryKeyring) -> None:
    secrets = store(redactor, memory)
    secrets.set("SLACK_BOT_TOKEN", "bot-token-value-1")
    assert secrets.get("SLACK_BOT_TOKEN") == "bot-token-value-1"


def test_set_with_the_fail_backend_says_how_to_fix_it(
    redactor: Redactor, failing: KeyringBackend
) -> None:
    with pytest.raises(SecretStoreError) as caught:
        store(redactor, failing).set("OPENAI_API_KEY", "sk-newvalue-0123456789abcdef")
    message = str(caught.value)
    assert "no keyring backend" in message
    assert "set OPENAI_API_KEY in the environment instead" in message
    assert "keyrings.alt" in message


def test_set_on_an_unusable_backend_is_one_clean_error_without_the_value(
    redactor: Redactor,
) -> None:
    with pytest.raises(SecretStoreError) as caught:
        store(redactor, LockedKeyring()).set("GITHUB_TOKEN", "gh-value-not-to-show")
    assert "gh-value-not-to-show" not in str(caught.value)
    assert "\n" not in str(caught.value)


def test_rotate_takes_effect_on_the_next_read(redactor: Redactor, memory: MemoryKeyring) -> None:
    secrets = store(redactor, memory)
    secrets.set("ANTHROPIC_API_KEY", "old-anthropic-value")
    secrets.rotate("ANTHROPIC_API_KEY", "new-anthropic-value")
    assert secrets.get("ANTHROPIC_API_KEY") == "new-anthropic-value"


def test_rotate_keeps_the_old_value_redacted(redactor: Redactor, memory: MemoryKeyring) -> None:
    memory.set_password("agentfirm", "ANTHROPIC_API_KEY", "old-anthropic-value")
    store(redactor, memory).rotate("ANTHROPIC_API_KEY", "new-anthropic-value")
    assert redactor.redact("old-anthropic-value new-anthropic-value") == f"{REDACTED} {REDACTED}"


def test_delete_removes_from_the_keyring(redactor: Redactor, memory: MemoryKeyring) -> None:
    secrets = store(redactor, memory)
    secrets.set("GITHUB_TOKEN", "gh-token-value-1")
    secrets.delete("GITHUB_TOKEN")
    assert secrets.get("GITHUB_TOKEN") is None


def test_delete_of_an_env_only_secret_says_where_it_comes_from(
    redactor: Redactor, memory: MemoryKeyring
) -> None:
    with pytest.raises(NotFound, match="unset GITHUB_TOKEN"):
        store(redactor, memory, {"GITHUB_TOKEN": ENV_VALUE}).delete("GITHUB_TOKEN")


def test_list_names_sources_and_never_values(redactor: Redactor, memory: MemoryKeyring) -> None:
    memory.set_password("agentfirm", "ANTHROPIC_API_KEY", ANTHROPIC)
    secrets = store(redactor, memory, {"SLACK_APP_TOKEN": ENV_VALUE, "UNRELATED": "x" * 20})
    listed = secrets.list()
    assert listed == [("ANTHROPIC_API_KEY", "keyring"), ("SLACK_APP_TOKEN", "env")]
    assert not {ANTHROPIC, ENV_VALUE} & {part for row in listed for part in row}


@pytest.mark.parametrize("name", ["anthropic_api_key", "1KEY", "MY-KEY", "A"])
def test_invalid_names_are_refused(redactor: Redactor, memory: MemoryKeyring, name: str) -> None:
    with pytest.raises(BadInput, match="not valid"):
        store(redactor, memory).get(name)


def test_unknown_upper_case_names_are_allowed(redactor: Redactor, memory: MemoryKeyring) -> None:
    secrets = store(redactor, memory)
    secrets.set("MY_SERVICE_TOKEN", "my-service-token-1")
    assert secrets.source("MY_SERVICE_TOKEN") == "keyring"
