"""The frequency-cap table: when each recipient was last sent something, per channel.

Keyed by ``tenant:recipient`` like enrich, which both reads and writes it. A plain table
of pruned timestamp lists rather than a windowed table: Faust's windowed tables stop
expiring after a RocksDB restart (faust-streaming issue 385), and a list pruned to the
window on every write stays small (at most ``cap`` entries per channel).
"""

from __future__ import annotations

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


def admit(
    recipient_key: bytes, channel: Channel, preference: ChannelPreference, now: float
) -> CapDecision:
    """Count one send against the recipient's cap for the channel, unless the cap is reached.

    Read and write happen with no await between them: the normal and the priority lane
    share this table, and an await would let the other lane interleave and lose a count.
    """
    cap, window_minutes = cap_for(channel, preference)
    by_channel = dict(caps_table.get(recipient_key) or {})
    decision = check_cap(by_channel.get(channel.value, ()), now, cap, window_minutes)
    if decision.allowed:
        by_channel[channel.value] = list(decision.history)
        caps_table[recipient_key] = by_channel
    return decision


def counters_for(recipient_key: bytes) -> dict[str, list[float]]:
    """The recipient's recent sends per channel (for table inspection)."""
    return dict(caps_table.get(recipient_key) or {})
