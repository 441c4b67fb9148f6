"""Preferences: apply changes from the API to the preferences table.

Web views cannot write Faust tables (with RocksDB it fails), so the API publishes
a PreferenceUpdate and this agent, on the partition that owns the recipient, applies it.
"""

from __future__ import annotations

import faust
from pydantic import ValidationError

from notifyhub.agents.reliability import dead_letter, letter_for
from notifyhub.app import app, preference_updates_topic
from notifyhub.messages import PreferenceUpdate
from notifyhub.tables.preferences import apply_update


@app.agent(preference_updates_topic, name="preferences")
async def apply_preference_updates(stream: faust.StreamT) -> None:
    async for event in stream.events():
        try:
            update = PreferenceUpdate.model_validate_json(event.value)
        except ValidationError as exc:
            await dead_letter(letter_for(event, f"invalid preference update: {exc}"))
            continue
        apply_update(update)
