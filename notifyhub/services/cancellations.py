"""Cancelling a notification the tenant no longer wants sent.

PostgreSQL decides (``db.notifications.cancel`` moves it to ``cancelled`` only while it is
cancellable); the send stage's claim then finds it final. Its ``cancelled`` delivery event
goes on the delivery events topic, whose stage logs it and fans it out to webhooks.
"""

from __future__ import annotations

import uuid

import asyncpg

from notifyhub.cores.records import event_record
from notifyhub.db import notifications
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import DeliveryEvent, Notification
from notifyhub.model.status import Status
from notifyhub.observability import tracing
from notifyhub.services.publishing import PUBLISH_WITHIN_SECONDS, Publish


async def cancel(
    pool: asyncpg.Pool,
    publish: Publish,
    topics: TopicNames,
    tenant_id: uuid.UUID,
    notification_id: uuid.UUID,
) -> asyncpg.Record | None:
    """The cancelled notification's row; ``None`` when the tenant has no such notification
    or it can no longer be cancelled."""
    row = await notifications.cancel(pool, tenant_id, notification_id)
    if row is None:
        return None
    cancelled = Notification.model_validate(
        {k: row[k] for k in ("id", "tenant_id", "channel", "recipient_id")}
    )
    event = DeliveryEvent.about(cancelled, Status.CANCELLED, reason="cancelled by the tenant")
    headers = tuple(tracing.kafka_headers().items())
    await publish([event_record(topics.delivery_events, event, headers)], PUBLISH_WITHIN_SECONDS)
    return row
