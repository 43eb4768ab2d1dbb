"""What ``agentfirm slack`` needs before it connects: the mode, where to listen, the Web API base,
who may act, and the tokens (from the ``SecretStore`` only). Every problem is found at once and
reported as one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from agentfirm.errors import BadInput
from agentfirm.secrets import SecretStore
from agentfirm.settings import Settings
from agentfirm.slack.access import ANYONE

Mode = Literal["socket", "http"]
MODES: tuple[Mode, ...] = ("socket", "http")
DEFAULT_API_URL = "https://slack.com/api/"
EVENTS_PATH = "/slack/events"


@dataclass(frozen=True)
class SlackConfig:
    """A validated configuration. Token fields are excluded from ``repr`` so a traceback or a
    debug print never shows them (the redactor is the second line of defence)."""

    mode: Mode
    host: str
    port: int
    api_url: str
    allowed_users: frozenset[str]
    allowed_channels: frozenset[str]
    bot_token: str = field(repr=False)
    app_token: str | None = field(default=None, repr=False)
    signing_secret: str | None = field(default=None, repr=False)
    offline: bool = False


def api_base(url: str | None) -> str:
    """The Web API base URL with the trailing slash slack-sdk joins method names onto."""
    base = url or DEFAULT_API_URL
    return base if base.endswith("/") else base + "/"


def load_slack_config(
    settings: Settings,
    secrets: SecretStore,
    *,
    mode: str | None = None,
    port: int | None = None,
    offline: bool | None = None,
) -> SlackConfig:
    """Settings and secrets → a ``SlackConfig``; ``mode``/``port``/``offline`` override the
    settings (the command line). Raises ``BadInput`` with every problem on one line."""
    chosen = mode or settings.slack_mode
    problems: list[str] = []
    if chosen not in MODES:
        problems.append(f"--mode {chosen!r} is not socket or http")
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"--port {port} is outside 1..65535")
    needed = ["SLACK_BOT_TOKEN"]
    needed.append("SLACK_APP_TOKEN" if chosen == "socket" else "SLACK_SIGNING_SECRET")
    values = {name: secrets.get(name) for name in needed}
    missing = [name for name, value in values.items() if not value]
    if missing:
        problems.append(
            f"{' and '.join(missing)} not found in the keyring or the environment "
            f"(set with `agentfirm secrets set {missing[0]}`)"
        )
    if not settings.slack_allowed_users:
        problems.append(
            "AGENTFIRM_SLACK_ALLOWED_USERS is empty, so nobody could act (set Slack user ids "
            f"separated by commas, or {ANYONE} for anyone)"
        )
    if problems:
        raise BadInput(f"cannot start the Slack app in {chosen} mode: " + "; ".join(problems))
    bot_token = values["SLACK_BOT_TOKEN"]
    assert bot_token is not None  # checked above
    return SlackConfig(
        mode="http" if chosen == "http" else "socket",
        host=settings.slack_host,
        port=port if port is not None else settings.slack_port,
        api_url=api_base(settings.slack_api_url),
        allowed_users=frozenset(settings.slack_allowed_users),
        allowed_channels=frozenset(settings.slack_allowed_channels),
        bot_token=bot_token,
        app_token=values.get("SLACK_APP_TOKEN"),
        signing_secret=values.get("SLACK_SIGNING_SECRET"),
        offline=settings.offline if offline is None else offline,
    )
