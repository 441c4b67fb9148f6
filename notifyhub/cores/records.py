"""What a stage core asks to produce."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from notifyhub.model.messages import DeliveryEvent

# A header on delivery events whose status (and delivery log row) the stage that made them
# wrote to PostgreSQL already: the delivery events stage passes them on to webhooks and
# does not write them again.
PERSISTED_HEADER = "nh-persisted"
PERSISTED = ((PERSISTED_HEADER, b"1"),)

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce: its topic's full name, key, value and headers."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


def event_record(topic: str, event: DeliveryEvent, headers: Headers = ()) -> Outgoing:
    """A delivery event as the record on ``topic`` (the delivery events topic), keyed by
    its notification so that one notification's events stay in order."""
    return Outgoing(topic, str(event.notification_id).encode(), event.to_bytes(), headers)
