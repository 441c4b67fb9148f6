"""The held table: notifications waiting for a time (``scheduled_at``, the end of quiet hours).

Keyed by ``tenant:recipient`` like the held topic, so a recipient's held notifications
live in the partition that owns the recipient and move with it on a rebalance; the
changelog rebuilds the table after a restart. Each value is the recipient's list of
held entries ``{id, release_at, destination, notification}``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from notifyhub.app import app, settings
from notifyhub.messages import Notification
from notifyhub.tables.partitions import partition_of

held_table = app.Table(
    "held",
    default=None,
    # Given to the table itself: Faust picks a table's serializers from its key and value
    # types (bytes: raw, none: JSON), not from a schema; raw keys partition like the topics.
    key_type=bytes,
    partitions=settings.topic_partitions,
)

# In memory only: the earliest release time per partition this worker knows of, so a
# tick scans the table only when something may be due. Unknown (after a start or a
# rebalance) means "scan on the next tick".
_next_due: dict[int, float] = {}


@dataclass(frozen=True)
class Released:
    destination: str
    notification: Notification


def hold(recipient_key: bytes, notification: Notification, release_at: float, destination: str) -> None:
    """Keep a notification until ``release_at`` (call while processing the recipient's event)."""
    entries = [e for e in (held_table.get(recipient_key) or []) if e["id"] != str(notification.id)]
    entries.append(
        {
            "id": str(notification.id),
            "release_at": release_at,
            "destination": destination,
            "notification": notification.model_dump(mode="json", exclude_none=True),
        }
    )
    held_table[recipient_key] = sorted(entries, key=lambda e: e["release_at"])
    partition = partition_of(recipient_key, settings.topic_partitions)
    if partition in _next_due:
        _next_due[partition] = min(_next_due[partition], release_at)


def release_due(partition: int, now: float) -> list[Released]:
    """Remove and return every entry of this partition due by ``now`` (call on its tick)."""
    if _next_due.get(partition, float("-inf")) > now:
        return []
    released: list[Released] = []
    next_due = float("inf")
    for key, entries in list(held_table.items()):
        if partition_of(key, settings.topic_partitions) != partition:
            continue
        due = [e for e in entries if e["release_at"] <= now]
        if due:
            waiting = [e for e in entries if e["release_at"] > now]
            if waiting:
                held_table[key] = waiting
            else:
                del held_table[key]
            released.extend(
                Released(e["destination"], Notification.model_validate(e["notification"])) for e in due
            )
            entries = waiting
        if entries:
            next_due = min(next_due, entries[0]["release_at"])
    _next_due[partition] = next_due
    return released


def forget_partitions() -> None:
    """After a rebalance the partitions this worker holds changed: rescan on the next ticks."""
    _next_due.clear()


def held_for(recipient_key: bytes) -> list[dict[str, Any]]:
    """The recipient's held entries (for table inspection)."""
    return list(held_table.get(recipient_key) or [])


def entry_id(entry: dict[str, Any]) -> uuid.UUID:
    return uuid.UUID(entry["id"])
