"""Preferences: apply changes from the API to the preferences table.

Web views cannot write Faust tables (with RocksDB it fails), so the API publishes
a PreferenceUpdate and this agent, on the partition that owns the recipient, applies it.
"""

from __future__ import annotations

from collections.abc import Sequence

import faust

from notifyhub.agents.kit import batches, dead_letters, guarded, parsed
from notifyhub.app import app, preference_updates_topic
from notifyhub.kafka.faust_app import at_event
from notifyhub.model.messages import PreferenceUpdate
from notifyhub.tables.preferences import apply_update


async def _apply(events: Sequence[faust.EventT[bytes]]) -> None:
    good, letters = parsed(events, PreferenceUpdate, "preference update")
    for event, update in good:
        with at_event(event):
            apply_update(update)
    await dead_letters(letters)


@app.agent(preference_updates_topic, name="preferences")
async def apply_preference_updates(stream: faust.StreamT[bytes]) -> None:
    async for events in batches(stream):
        await guarded(events, _apply, "preference updates")
