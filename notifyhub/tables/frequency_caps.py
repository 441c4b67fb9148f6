"""The frequency-cap table: when each recipient was last sent something, per channel.

Keyed by ``tenant:recipient`` like enrich, which both reads and writes it; each value maps
a channel to its counted sends, packed (``notifyhub.rules.frequency_caps.Counted``). A plain table
of pruned histories rather than a windowed table: Faust's windowed tables stop expiring
after a RocksDB restart (faust-streaming issue 385), and a history pruned to the window on
every write stays small (at most ``cap`` sends per channel).
"""

from __future__ import annotations

from typing import Any

from notifyhub.app import app, settings
from notifyhub.rules.frequency_caps import Counted

caps_table = app.Table(
    "frequency-caps",
    default=None,
    # Given to the table itself: Faust picks a table's serializers from its key and value
    # types (bytes: raw, none: JSON), not from a schema; raw keys partition like the topics.
    key_type=bytes,
    partitions=settings.topic_partitions,
)


def counts_of(recipient_key: bytes) -> dict[str, Any]:
    """The recipient's stored counts by channel, as a copy to update (call while processing
    an event of the key's partition; Faust writes the changelog only on assignment)."""
    return dict(caps_table.get(recipient_key) or {})


def store(recipient_key: bytes, counts: dict[str, Any]) -> None:
    """Write the recipient's counts back (while processing an event of the key's partition)."""
    caps_table[recipient_key] = counts


def counters_for(recipient_key: bytes) -> dict[str, list[float]]:
    """When the recipient's counted sends happened, per channel (for table inspection)."""
    return {
        channel: Counted.load(stored).times()
        for channel, stored in (caps_table.get(recipient_key) or {}).items()
    }
