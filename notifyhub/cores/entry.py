"""Where a newly stored notification goes first, for the HTTP API and intake alike.

A notification whose ``scheduled_at`` is ahead is held until then (``scheduled``); any
other goes to enrich (``queued``). Either way a delivery event announces it. The event's
id is derived from the notification and the status, so a record read again (Kafka is
at-least-once) makes the same event, which the delivery log and webhook receivers take once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from notifyhub.cores.held import hold_record
from notifyhub.cores.records import PERSISTED, Headers, Outgoing, event_record
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import DeliveryEvent, Destination, Notification
from notifyhub.model.status import Status

# Entry events' ids are uuid5 of "{notification id}:{status}" under this namespace.
ENTRY_EVENT_NAMESPACE = uuid.UUID("8f0e6c4a-2f43-4c1e-9a0b-6e7472792e31")


def entry_event(notification: Notification, now: float) -> DeliveryEvent:
    """The status a notification enters the pipeline with, as its delivery event."""
    scheduled = notification.scheduled_at
    status = Status.SCHEDULED if scheduled is not None and scheduled.timestamp() > now else Status.QUEUED
    return DeliveryEvent(
        event_id=uuid.uuid5(ENTRY_EVENT_NAMESPACE, f"{notification.id}:{status}"),
        notification_id=notification.id,
        tenant_id=notification.tenant_id,
        channel=notification.channel,
        recipient_id=notification.recipient_id,
        status=status,
        occurred_at=datetime.fromtimestamp(now, UTC),
    )


def entry_records(
    topics: TopicNames,
    notification: Notification,
    event: DeliveryEvent,
    headers: Headers = (),
    *,
    persisted: bool,
) -> list[Outgoing]:
    """The event, then the notification to enrich, or its hold until ``scheduled_at``.

    ``persisted``: the event's status and log row are in PostgreSQL already.
    """
    announced = event_record(
        topics.delivery_events, event, headers + PERSISTED if persisted else headers
    )
    if event.status is Status.SCHEDULED:
        assert notification.scheduled_at is not None  # what makes it scheduled
        return [
            announced,
            hold_record(
                topics, notification, notification.scheduled_at.timestamp(), Destination.ENRICH, headers
            ),
        ]
    return [
        announced,
        Outgoing(
            topics.enrich(notification.priority),
            notification.recipient_key,
            notification.to_bytes(),
            headers,
        ),
    ]
