"""The frequency-cap table: when each recipient was last sent something, per channel.

Keyed by ``tenant:recipient`` like enrich, which both reads and writes it. A plain table
of pruned timestamp lists rather than a windowed table: Faust's windowed tables stop
expiring after a RocksDB restart (faust-streaming issue 385), and a list pruned to the
window on every write stays small (at most ``cap`` ``[time, notification id]`` entries
per channel).
"""

from __future__ import annotations

import uuid

from notifyhub.app import app, settings
from notifyhub.channels import Channel
from notifyhub.frequency_caps import CapDecision, cap_for, check_cap
from notifyhub.messages import ChannelPreference

caps_table = app.Table(
    "frequency-caps",
    default=None,
    # Given to the table itself: Faust picks a table's serializers from its key and value
    # types (bytes: raw, none: JSON), not from a schema; raw keys partition like the topics.
    key_type=bytes,
    partitions=settings.topic_partitions,
)


def _entries(stored: list) -> list[tuple[float, str | None]]:
    """A channel's counts as (time, notification id). Tables written before counts named
    their notification hold bare times; those still count, without an id."""
    return [
        (entry, None) if isinstance(entry, int | float) else (entry[0], entry[1]) for entry in stored
    ]


def admit(
    recipient_key: bytes,
    channel: Channel,
    preference: ChannelPreference,
    now: float,
    notification_id: uuid.UUID,
) -> CapDecision:
    """Count one send against the recipient's cap for the channel, unless the cap is reached.

    Each count remembers its notification, so a notification counted before (a replayed
    message: Kafka is at-least-once) passes without being counted twice.
    Read and write happen with no await between them: the normal and the priority lane
    share this table, and an await would let the other lane interleave and lose a count.
    """
    cap, window_minutes = cap_for(channel, preference)
    by_channel = dict(caps_table.get(recipient_key) or {})
    counted = _entries(by_channel.get(channel.value, []))
    times = [at for at, _ in counted]
    if any(nid == str(notification_id) for _, nid in counted):
        return CapDecision(True, len(counted), cap, window_minutes, tuple(times))
    decision = check_cap(times, now, cap, window_minutes)
    if decision.allowed:
        kept = [[at, nid] for at, nid in counted if at in decision.history]
        by_channel[channel.value] = [*kept, [now, str(notification_id)]][-cap:]
        caps_table[recipient_key] = by_channel
    return decision


def counters_for(recipient_key: bytes) -> dict[str, list[float]]:
    """When the recipient's counted sends happened, per channel (for table inspection)."""
    return {
        channel: [at for at, _ in _entries(entries)]
        for channel, entries in (caps_table.get(recipient_key) or {}).items()
    }
