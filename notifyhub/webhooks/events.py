"""The events a webhook endpoint may subscribe to, and the payload of each."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from notifyhub.messages import DeliveryEvent, DeviceTokenEvent
from notifyhub.status import Status

DEVICE_TOKEN_DEACTIVATED = "device_token.deactivated"
# NotifyHub's notification.delivered / .failed / .dropped, plus every other status the
# pipeline reports (queued, scheduled, deferred, retrying, cancelled...).
EVENTS = frozenset({f"notification.{status.value}" for status in Status} | {DEVICE_TOKEN_DEACTIVATED})


def _timestamp(at: datetime) -> str:
    return at.isoformat()


def notification_payload(event: DeliveryEvent) -> tuple[str, dict[str, Any]]:
    """The event name and payload for a status change: the status is the one it is about."""
    name = f"notification.{event.status.value}"
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
