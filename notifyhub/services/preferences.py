"""Changing a recipient's preferences: in PostgreSQL (the system of record), then in the
pipeline's preferences table, which only a stage may write, so each change is announced
on the preference updates topic (``PreferenceUpdate``).

A change is announced even when PostgreSQL had it already: a retried request also repairs
a table that the first announcement never reached.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from notifyhub.cores.records import Outgoing
from notifyhub.db import recipients
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import ChannelPreference, PreferenceUpdate
from notifyhub.observability import tracing
from notifyhub.runtime.resources import Resources
from notifyhub.services.publishing import PUBLISH_WITHIN_SECONDS, Publish


class Preferences:
    """Preference changes for the HTTP API and the unsubscribe links."""

    def __init__(self, resources: Resources, publish: Publish, topics: TopicNames) -> None:
        self._resources = resources
        self._publish = publish
        self._topics = topics

    async def put(
        self, tenant_id: uuid.UUID, user_id: str, channel: Channel, values: dict[str, Any]
    ) -> asyncpg.Record:
        """Store a channel's preference; without a timezone, the profile's (else UTC)."""
        pool = await self._resources.db()
        values = dict(values)
        if values.get("timezone") is None:
            values["timezone"] = await recipients.profile_timezone(pool, tenant_id, user_id) or "UTC"
        row = await recipients.put_preference(pool, tenant_id, user_id, channel, values)
        await self._announce(tenant_id, user_id, channel, None, ChannelPreference(**values))
        return row

    async def delete(self, tenant_id: uuid.UUID, user_id: str, channel: Channel) -> None:
        await recipients.delete_preference(await self._resources.db(), tenant_id, user_id, channel)
        await self._announce(tenant_id, user_id, channel, None, None)

    async def put_category(
        self, tenant_id: uuid.UUID, user_id: str, channel: Channel, category: str, enabled: bool
    ) -> asyncpg.Record:
        row = await recipients.put_category_preference(
            await self._resources.db(), tenant_id, user_id, channel, category, enabled
        )
        await self._announce(tenant_id, user_id, channel, category, ChannelPreference(enabled=enabled))
        return row

    async def delete_category(
        self, tenant_id: uuid.UUID, user_id: str, channel: Channel, category: str
    ) -> None:
        """The category is on again (as it is by default)."""
        await recipients.delete_category_preference(
            await self._resources.db(), tenant_id, user_id, channel, category
        )
        await self._announce(tenant_id, user_id, channel, category, None)

    async def turn_off(
        self, tenant_id: uuid.UUID, user_id: str, channel: Channel, category: str | None
    ) -> None:
        """Turn a category of a channel off for the recipient, or the whole channel (an
        unsubscribe link)."""
        if category is not None:
            await self.put_category(tenant_id, user_id, channel, category, False)
            return
        row = await recipients.turn_channel_off(await self._resources.db(), tenant_id, user_id, channel)
        values = {name: row[name] for name in ChannelPreference.model_fields}
        await self._announce(tenant_id, user_id, channel, None, ChannelPreference(**values))

    async def _announce(
        self,
        tenant_id: uuid.UUID,
        user_id: str,
        channel: Channel,
        category: str | None,
        preference: ChannelPreference | None,
    ) -> None:
        update = PreferenceUpdate(
            tenant_id=tenant_id,
            user_id=user_id,
            channel=channel,
            category=category,
            preference=preference,
        )
        headers = tuple(tracing.kafka_headers().items())
        record = Outgoing(
            self._topics.preference_updates, update.recipient_key, update.to_bytes(), headers
        )
        await self._publish([record], PUBLISH_WITHIN_SECONDS)
