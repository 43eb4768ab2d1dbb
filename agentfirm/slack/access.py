"""Who may act from Slack: an allow-list of user ids and (optionally) of channel ids. Everything a
Slack user can do — start a task, answer, approve — goes through ``refusal`` first."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

ANYONE = "*"


@dataclass(frozen=True)
class AccessPolicy:
    """``users``: the ids that may act (``*`` for anyone). ``channels``: where they may act
    (empty for any channel the bot is in)."""

    users: frozenset[str]
    channels: frozenset[str] = frozenset()

    @classmethod
    def of(cls, users: Collection[str], channels: Collection[str] = ()) -> AccessPolicy:
        return cls(frozenset(users), frozenset(channels))

    def refusal(self, user: str | None, channel: str | None) -> str | None:
        """Why ``user`` may not act in ``channel`` (a sentence for an ephemeral reply), or None
        when they may."""
        if not user or (ANYONE not in self.users and user not in self.users):
            return (
                "You are not on this agentfirm's allow-list, so you cannot start tasks or "
                "decide here. Ask whoever runs it to add your Slack user id to "
                "AGENTFIRM_SLACK_ALLOWED_USERS."
            )
        if self.channels and channel not in self.channels:
            return (
                "agentfirm does not take requests or decisions in this channel "
                "(AGENTFIRM_SLACK_ALLOWED_CHANNELS)."
            )
        return None
