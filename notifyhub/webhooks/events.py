"""The events a webhook endpoint may subscribe to, and the payload of each."""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

from notifyhub.model.messages import DeliveryEvent, DeviceTokenEvent, Occurrence
from notifyhub.model.status import Status

DEVICE_TOKEN_DEACTIVATED = "device_token.deactivated"
# NotifyHub's notification.delivered / .failed / .dropped, plus every other status the
# pipeline reports (queued, scheduled, deferred, retrying, cancelled...).
# Beyond statuses: an escalation step was sent, or the message was seen or read first.
OCCURRENCES = get_args(Occurrence)
EVENTS = frozenset(
    {f"notification.{status.value}" for status in Status}
    | {f"notification.{occurrence}" for occurrence in OCCURRENCES}
    | {DEVICE_TOKEN_DEACTIVATED}
)
# What an event's related notification is called in its payload.
RELATED_NAMES = {"digested": "digest_id", "escalated": "step_notification_id"}


def _timestamp(at: datetime) -> str:
    return at.isoformat()


def notification_payload(event: DeliveryEvent) -> tuple[str, dict[str, Any]]:
    """The event name and payload for a status change (the status is the one it is about),
    or for an occurrence (the status is the notification's at the time)."""
    happened = event.occurrence or event.status.value
    name = f"notification.{happened}"
    payload: dict[str, Any] = {
        "event": name,
        "notification_id": str(event.notification_id),
        "tenant_id": str(event.tenant_id),
        "channel": event.channel.value,
        "recipient_id": event.recipient_id,
        "status": event.status.value,
        "timestamp": _timestamp(event.occurred_at),
        "attempt": event.attempt,
    }
    for field in ("provider", "provider_message_id", "reason"):
        if getattr(event, field) is not None:
            payload[field] = getattr(event, field)
    if event.related_notification_id is not None:
        payload[RELATED_NAMES.get(happened, "related_notification_id")] = str(
            event.related_notification_id
        )
    return name, payload


def device_token_payload(event: DeviceTokenEvent) -> tuple[str, dict[str, Any]]:
    payload = {
        "event": event.event,
        "tenant_id": str(event.tenant_id),
        "user_id": event.user_id,
        "token": event.token,
        "reason": event.reason,
        "timestamp": _timestamp(event.occurred_at),
    }
    if event.notification_id is not None:
        payload["notification_id"] = str(event.notification_id)
    return event.event, payload
