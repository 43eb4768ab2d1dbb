"""A provider's key is read from the secret store at most once per TTL, and a rotation still takes
effect: after the TTL, or at once when the provider refuses the old key."""

from __future__ import annotations

import pytest

from agentfirm.router.errors import ProviderAuthError
from agentfirm.router.providers._common import KeySource

NAME = "ANTHROPIC_API_KEY"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Secrets:
    """A secret store that counts its reads."""

    def __init__(self, value: str | None) -> None:
        self.values = {NAME: value}
        self.reads = 0

    def get(self, name: str) -> str | None:
        self.reads += 1
        return self.values.get(name)


def source(secrets: Secrets, clock: Clock, ttl_s: float = 5.0) -> KeySource:
    return KeySource("anthropic", secrets.get, (NAME,), ttl_s=ttl_s, clock=clock)


async def test_key_is_read_once_within_the_ttl() -> None:
    secrets, clock = Secrets("sk-ant-old-00000001"), Clock()
    keys = source(secrets, clock)

    for _ in range(3):
        assert await keys.read() == ("sk-ant-old-00000001", NAME)
        clock.now += 1.0

    assert secrets.reads == 1


async def test_rotated_key_is_used_once_the_ttl_passed() -> None:
    secrets, clock = Secrets("sk-ant-old-00000001"), Clock()
    keys = source(secrets, clock)
    await keys.read()

    secrets.values[NAME] = "sk-ant-new-00000002"
    clock.now += 5.0

    assert await keys.read() == ("sk-ant-new-00000002", NAME)


async def test_zero_ttl_reads_on_every_call() -> None:
    secrets, clock = Secrets("sk-ant-old-00000001"), Clock()
    keys = source(secrets, clock, ttl_s=0.0)
    await keys.read()

    secrets.values[NAME] = "sk-ant-new-00000002"

    assert await keys.read() == ("sk-ant-new-00000002", NAME)


async def test_refused_cached_key_is_read_again_and_the_rotated_one_retried() -> None:
    secrets, clock = Secrets("sk-ant-old-00000001"), Clock()
    keys = source(secrets, clock)
    await keys.read()
    secrets.values[NAME] = "sk-ant-new-00000002"  # rotated; the old one is revoked
    sent: list[str | None] = []

    async def send(key: str | None, name: str) -> str:
        sent.append(key)
        if key != "sk-ant-new-00000002":
            raise ProviderAuthError(provider="anthropic", key_env=name, status=401, detail="bad")
        return "ok"

    assert await keys.call(send) == "ok"
    assert sent == ["sk-ant-old-00000001", "sk-ant-new-00000002"]


async def test_refused_key_that_did_not_change_is_an_auth_error_after_one_try() -> None:
    secrets, clock = Secrets("sk-ant-old-00000001"), Clock()
    keys = source(secrets, clock)
    sent: list[str | None] = []

    async def send(key: str | None, name: str) -> str:
        sent.append(key)
        raise ProviderAuthError(provider="anthropic", key_env=name, status=401, detail="bad")

    with pytest.raises(ProviderAuthError, match=NAME):
        await keys.call(send)
    assert sent == ["sk-ant-old-00000001"]


async def test_key_removed_is_an_auth_error_once_the_ttl_passed() -> None:
    secrets, clock = Secrets("sk-ant-old-00000001"), Clock()
    keys = source(secrets, clock)
    await keys.read()

    secrets.values[NAME] = None
    clock.now += 5.0

    with pytest.raises(ProviderAuthError, match=NAME):
        await keys.read()
