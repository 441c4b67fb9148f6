"""Digests: what a collected notification and a closed window become.

A notification with a digest rule is collected (the held stage's table) with the
recipient's others of the same channel and key that arrive while the window is open; the
window opens with the first and closes ``window_seconds`` later, at ``max_items``, or
when one more item would take its payload past the payload limit. Each item becomes
``digested`` as it joins; the closed window becomes one ordinary notification, the digest,
whose id is derived from its first item's, so a window released twice (a worker died
between the table and Kafka) is one digest.

The digest's payload is ``{"key", "count", "items": [{"id", "type", "payload"}]}``; it is
rendered with the rule's template, else the first item's; without either, its texts are
the items' (``subject``: the first's subject and how many more; ``body``: each item's body
on a line of its own).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from notifyhub.cores.enrich import payload_text
from notifyhub.model import limits
from notifyhub.model.messages import (
    PAYLOAD_BODY_FIELDS,
    PAYLOAD_SUBJECT_FIELDS,
    DeliveryEvent,
    IntakeMessage,
    Notification,
)
from notifyhub.model.status import Status

DIGEST_NAMESPACE = uuid.UUID("d1635e57-0c6b-4a7e-8f0e-646967657374")
DIGESTED_EVENT_NAMESPACE = uuid.UUID("d1635e57-0c6b-4a7e-8f0e-6469676e7374")
# Room kept in a digest's payload for its own fields and the texts made without a template.
PAYLOAD_ROOM = 2048


def digest_id(first_item: uuid.UUID) -> uuid.UUID:
    """The digest a window becomes: derived from the window's first item."""
    return uuid.uuid5(DIGEST_NAMESPACE, str(first_item))


def window_of(notification: Notification) -> str:
    """Which window of its recipient a notification joins: its channel and digest key."""
    assert notification.digest is not None
    return f"{notification.channel}:{notification.digest.key}"


def item_of(notification: Notification) -> dict[str, Any]:
    """A notification as an item of its digest's payload."""
    item: dict[str, Any] = {"id": str(notification.id), "payload": notification.payload}
    if notification.type is not None:
        item["type"] = notification.type
    return item


def item_size(item: dict[str, Any]) -> int:
    return limits.payload_size(item)


def fits(size: int, more: int) -> bool:
    """Whether a window's items of ``size`` bytes take one more of ``more`` bytes."""
    return size + more <= limits.MAX_PAYLOAD_SIZE - PAYLOAD_ROOM


def digested_event(item: Notification, digest: uuid.UUID, now: float) -> DeliveryEvent:
    """The item's ``digested`` status, naming the digest; the same event each time it is made."""
    return DeliveryEvent(
        event_id=uuid.uuid5(DIGESTED_EVENT_NAMESPACE, str(item.id)),
        notification_id=item.id,
        tenant_id=item.tenant_id,
        channel=item.channel,
        recipient_id=item.recipient_id,
        status=Status.DIGESTED,
        reason=f"joined digest {digest}",
        related_notification_id=digest,
        occurred_at=datetime.fromtimestamp(now, UTC),
    )


def digest_message(digest: uuid.UUID, items: list[Notification]) -> IntakeMessage:
    """The notification a closed window becomes (built from items that were accepted, so
    not validated again: their payloads together may pass the request limits)."""
    first = items[0]
    rule = first.digest
    assert rule is not None
    payload: dict[str, Any] = {
        "key": rule.key,
        "count": len(items),
        "items": [item_of(item) for item in items],
    }
    template_id = rule.template_id or first.template_id
    if template_id is None:
        payload.update(_texts(items))
    return IntakeMessage.model_construct(
        v=2,
        id=digest,
        tenant_id=first.tenant_id,
        channel=first.channel,
        recipient_id=first.recipient_id,
        recipient_address=first.recipient_address,
        type=f"digest:{rule.key}",
        template_id=template_id,
        payload=payload,
        # As urgent as its most urgent item.
        priority=min(item.priority for item in items),
        idempotency_key=None,
        scheduled_at=None,
        locale=first.locale,
        category=first.category,
        digest=None,
        escalate=None,
    )


def _texts(items: list[Notification]) -> dict[str, str]:
    """A digest's subject and body made from its items' texts."""
    texts: dict[str, str] = {}
    subject = payload_text(items[0].payload, PAYLOAD_SUBJECT_FIELDS)
    if subject is not None:
        texts["subject"] = subject if len(items) == 1 else f"{subject} (+{len(items) - 1} more)"
    bodies = (payload_text(item.payload, PAYLOAD_BODY_FIELDS) for item in items)
    texts["body"] = "\n".join(body for body in bodies if body)
    return texts
