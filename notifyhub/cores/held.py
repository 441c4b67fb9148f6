"""Asking the held stage to keep something until a time."""

from __future__ import annotations

from notifyhub.cores.records import Headers, Outgoing
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import Destination, HoldRequest, Notification, WebhookDelivery


def hold_record(
    topics: TopicNames,
    notification: Notification,
    release_at: float,
    destination: Destination,
    headers: Headers = (),
) -> Outgoing:
    """Keep ``notification`` until ``release_at`` (seconds since the epoch), then send it
    to enrich or back to its channel's sender."""
    request = HoldRequest(notification=notification, release_at=release_at, destination=destination)
    return Outgoing(topics.held, notification.recipient_key, request.to_bytes(), headers)


def webhook_retry_record(
    topics: TopicNames, delivery: WebhookDelivery, release_at: float, headers: Headers = ()
) -> Outgoing:
    """Keep a webhook delivery until its next attempt."""
    request = HoldRequest(webhook=delivery, release_at=release_at, destination=Destination.WEBHOOK)
    return Outgoing(topics.held, delivery.endpoint_key, request.to_bytes(), headers)
