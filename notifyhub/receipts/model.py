"""What a provider tells us about a message it accepted, in one shape for every provider.

A receipt carries an id unique per provider event, so a callback the provider sends twice
(it retries when our answer is slow) is recorded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Outcome(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


@dataclass(frozen=True)
class Receipt:
    """One provider event about one message.

    ``receipt_id`` is unique per provider event (the dedupe key); ``suppress`` lists the
    addresses that must not be sent to again (hard-bounced or complaining recipients), and
    ``suppress_reason`` says why ("hard bounce" or "complaint").
    """

    provider: str
    provider_message_id: str
    outcome: Outcome
    receipt_id: str
    occurred_at: datetime
    reason: str | None
    suppress: tuple[str, ...] = ()
    suppress_reason: str | None = None

    def __post_init__(self) -> None:
        # A naive time would be read as the reader's local time somewhere downstream.
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))
