"""Preferences: apply changes from the API to the preferences table.

Web views cannot write Faust tables (with RocksDB it fails), so the API publishes
a PreferenceUpdate and this agent, on the partition that owns the recipient, applies it.
"""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from notifyhub.app import app, preference_updates_topic
from notifyhub.messages import PreferenceUpdate
from notifyhub.tables.preferences import apply_update

logger = logging.getLogger(__name__)


@app.agent(preference_updates_topic, name="preferences")
async def apply_preference_updates(stream: faust.StreamT) -> None:
    async for raw in stream:
        try:
            update = PreferenceUpdate.model_validate_json(raw)
        except ValidationError as exc:
            logger.error("skipping a malformed preference update: %s", exc)
            continue
        apply_update(update)
