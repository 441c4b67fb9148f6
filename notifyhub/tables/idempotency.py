"""The idempotency table: which notification a tenant's idempotency key stands for.

Keyed by ``tenant:idempotency-key`` like the accepted topic, so the stage that decides
"seen before?" reads its own partition. An entry lasts ``NOTIFYHUB_IDEMPOTENCY_RETENTION_HOURS``
(24 h by default); after that the same key makes a new notification. Expired entries are
read as absent and swept away on the partition's maintenance ticks.
"""

from __future__ import annotations

import uuid

from notifyhub.app import app, settings
from notifyhub.tables.partitions import partition_of

idempotency_table = app.Table(
    "idempotency",
    default=None,
    # Given to the table itself: Faust picks a table's serializers from its key and value
    # types (bytes: raw, none: JSON), not from a schema; raw keys partition like the topics.
    key_type=bytes,
    partitions=settings.topic_partitions,
)


def retention_seconds() -> float:
    return settings.idempotency_retention_hours * 3600


def claim(key: bytes, notification_id: uuid.UUID, now: float, record: str) -> tuple[uuid.UUID, bool]:
    """The notification that owns ``key`` now (``notification_id`` unless a live entry names
    another), and whether another record passed it on already (call while processing an
    event of the key's partition).

    ``record`` names the record being processed (``record_name``). The record that passed
    the notification on, read again, is not "another": a worker that died before its
    offset was committed may have written this table's changelog and not what the record
    produced (the producer sends to each partition on its own), so it is processed again.
    """
    entry = idempotency_table.get(key)
    if entry is not None and entry["expires_at"] > now:
        by = entry.get("passed_on")  # the record that did; True in entries from before
        return uuid.UUID(entry["notification_id"]), bool(by) and by != record
    idempotency_table[key] = {
        "notification_id": str(notification_id),
        "expires_at": now + retention_seconds(),
    }
    return notification_id, False


def passed_on(key: bytes, record: str) -> None:
    """Remember that the key's notification went on to the next stage from ``record``:
    another copy of it (the HTTP API sends one again when a client retries after a
    timeout) is not passed on."""
    entry = idempotency_table.get(key)
    if entry is not None:
        idempotency_table[key] = {**entry, "passed_on": record}


def record_name(topic: str, partition: int, offset: int) -> str:
    """A Kafka record's name: where it is."""
    return f"{topic}:{partition}:{offset}"


def sweep(partition: int, now: float) -> int:
    """Delete the expired entries of one partition; how many (call on its tick)."""
    expired = [
        key
        for key, entry in list(idempotency_table.items())
        if entry["expires_at"] <= now and partition_of(key, settings.topic_partitions) == partition
    ]
    for key in expired:
        del idempotency_table[key]
    return len(expired)
