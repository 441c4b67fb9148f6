"""Intake: validate, persist and route every notification request, from HTTP or Kafka.

A message that cannot be a notification (not JSON, wrong shape, unknown tenant,
nothing to send) goes to the dead-letter topic with the reason; the partition
keeps flowing. An accepted one is stored (status ``queued``), announced on the
delivery events topic, and re-keyed by tenant:recipient for enrich.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from notifyhub.agents.reliability import Rejected, dead_letter, through_outages
from notifyhub.app import app, delivery_events_topic, enrich_topic, intake_topic, publish, resources
from notifyhub.db import notifications, tenants
from notifyhub.messages import (
    KAFKA_ORIGIN_NAMESPACE,
    DeadLetter,
    DeliveryEvent,
    IntakeMessage,
    Notification,
)
from notifyhub.resolve import Unresolvable, resolve
from notifyhub.status import Status

logger = logging.getLogger(__name__)

# Tenants are never deleted while their notifications flow, so a tenant once seen
# need not be looked up again by this process.
_known_tenants: set[uuid.UUID] = set()


def parse(raw: bytes | None, origin: str) -> IntakeMessage:
    """The intake message in ``raw``, with an id derived from ``origin`` when it has none."""
    if not raw:
        raise Rejected("empty message")
    try:
        message = IntakeMessage.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'message'}: "
            f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise Rejected(f"invalid intake message: {problems}") from None
    problems = message.unsupported_fields(datetime.now(UTC))
    if problems:
        raise Rejected("invalid intake message: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    if message.id is None:
        message = message.model_copy(update={"id": uuid.uuid5(KAFKA_ORIGIN_NAMESPACE, origin)})
    return message


async def accept(message: IntakeMessage) -> None:
    pool = await resources.db()
    if message.tenant_id not in _known_tenants:
        if not await tenants.tenant_exists(pool, message.tenant_id):
            raise Rejected(f"unknown tenant {message.tenant_id}")
        _known_tenants.add(message.tenant_id)
    try:
        message = await resolve(pool, message.tenant_id, message)
    except Unresolvable as exc:
        if await notifications.exists(pool, message.tenant_id, message.id):
            # Accepted by the API, then its template went away before intake saw it: the
            # notification is known, so it fails with the reason rather than vanish into a DLQ.
            known = Notification(**message.model_dump(exclude={"v"}))
            event = DeliveryEvent.about(known, Status.FAILED, reason=str(exc))
            await publish(delivery_events_topic, str(known.id).encode(), event.to_bytes())
            return
        raise Rejected(f"invalid intake message: {exc}") from None
    stored = await notifications.insert(pool, message, Status.QUEUED)
    if stored is None and not await notifications.exists(pool, message.tenant_id, message.id):
        # Same tenant and idempotency key as an earlier notification with another id.
        logger.info(
            "notification %s (tenant %s) is a duplicate of idempotency key %r; not sent again",
            message.id,
            message.tenant_id,
            message.idempotency_key,
        )
        return
    notification = Notification(**message.model_dump(exclude={"v"}))
    # The event first, so the log shows "queued" before anything a later stage reports.
    event = DeliveryEvent.about(notification, Status.QUEUED)
    await publish(delivery_events_topic, str(notification.id).encode(), event.to_bytes())
    await publish(enrich_topic, notification.recipient_key, notification.to_bytes())


@app.agent(intake_topic, name="intake")
async def intake(stream: faust.StreamT) -> None:
    async for event in stream.events():
        origin = f"{event.message.topic}:{event.message.partition}:{event.message.offset}"
        raw = event.value
        try:
            message = parse(raw, origin)
            await through_outages(lambda message=message: accept(message), f"intake {origin}")
        except Rejected as exc:
            await dead_letter(_letter(event, str(exc)))
        except Exception as exc:
            logger.exception("intake failed on %s", origin)
            await dead_letter(_letter(event, f"internal error: {exc!r}"))


def _tenant_hint(raw: bytes | None) -> uuid.UUID | None:
    """The tenant a rejected message claims, when it says, so its DLQ entry is scoped."""
    try:
        return uuid.UUID(str(json.loads(raw or b"")["tenant_id"]))
    except (ValueError, TypeError, KeyError):
        return None


def _letter(event: faust.EventT, reason: str) -> DeadLetter:
    return DeadLetter(
        source_topic=event.message.topic,
        reason=reason,
        tenant_id=_tenant_hint(event.value),
        message_key=event.key,
        message=event.value or b"",
    )
