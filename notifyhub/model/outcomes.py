"""What one notification's delivery came to, as the send stage's core decides on it.

Plain values (no I/O), so the pure send core can branch on them without importing the
dispatcher that produces them (``notifyhub.delivery.dispatch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Result(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"  # refused for good: retrying cannot help
    TEMPORARY = "temporary"  # every provider tried failed temporarily
    UNAVAILABLE = "unavailable"  # nothing was tried: every provider's breaker is open


@dataclass(frozen=True)
class Outcome:
    result: Result
    provider: str | None = None
    provider_message_id: str | None = None
    reason: str | None = None
    # For UNAVAILABLE: seconds until a breaker lets a probe through.
    retry_after: float = 0.0
    # For FAILED: the provider says the address itself is dead (a push token).
    address_invalid: bool = False
    # For FAILED: the provider says the recipient opted out of our sender (Twilio 21610).
    opted_out: bool = False
