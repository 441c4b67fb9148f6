"""The preferences table: each recipient's per-channel preferences (and per category of a
channel, keyed ``channel:category``), where enrich runs.

Keyed by ``tenant:recipient`` with the same partitions as the enrich topic, so enrich
reads the partition it is processing. PostgreSQL stays the system of record; this
table is fed by the preference updates topic and rebuilt from its changelog on restart.
"""

from __future__ import annotations

from typing import Any

from notifyhub.app import app, settings
from notifyhub.model.messages import PreferenceUpdate

preferences_table = app.Table(
    "preferences",
    default=None,
    # Given to the table itself: Faust picks a table's serializers from its key and value
    # types (bytes: raw, none: JSON), not from a schema; raw keys partition like the topics.
    key_type=bytes,
    partitions=settings.topic_partitions,
)


def preferences_for(recipient_key: bytes) -> dict[str, dict[str, Any]]:
    """The recipient's stored preferences by ``channel`` or ``channel:category`` (for table
    inspection)."""
    return dict(preferences_table.get(recipient_key) or {})


def apply_update(update: PreferenceUpdate) -> None:
    """Record one update (call from the agent consuming the preference updates topic)."""
    key = update.recipient_key
    # A copy, re-assigned: Faust writes the changelog only on assignment.
    by_channel = dict(preferences_table.get(key) or {})
    if update.preference is None:
        by_channel.pop(update.table_key, None)
    else:
        by_channel[update.table_key] = update.preference.model_dump(mode="json")
    preferences_table[key] = by_channel
