"""Accept: decide once per idempotency key, store the notification, and route it.

Keyed by ``tenant:idempotency-key`` (``tenant:id`` without a key), fed by the HTTP API
and by intake, so a duplicate from either is seen by the same partition of the
idempotency table and delivered at most once. An accepted notification is stored
(``queued``), announced on the delivery events topic, and re-keyed by recipient: to the
held stage while its ``scheduled_at`` is ahead, else to enrich.
"""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from notifyhub import clock, tracing
from notifyhub.agents.held import request_hold
from notifyhub.agents.reliability import dead_letter, guarded, letter_for, through_outages
from notifyhub.app import (
    accepted_topics,
    app,
    delivery_events_topic,
    enqueue,
    enrich_topics,
    lane_agents,
    resources,
)
from notifyhub.db import notifications
from notifyhub.messages import DeliveryEvent, IntakeMessage, Notification
from notifyhub.metrics import NOTIFICATIONS_ENQUEUED
from notifyhub.status import Status
from notifyhub.tables import idempotency

logger = logging.getLogger(__name__)

# Expired idempotency entries are swept this often per partition.
SWEEP_EVERY_SECONDS = 600.0
MAINTENANCE_KEY = b"maintenance"
_last_sweep: dict[int, float] = {}


def accepted_key(message: IntakeMessage) -> bytes:
    """One tenant's idempotency key always lands in one partition of the accepted topic.

    A notification without a key is keyed by its recipient instead, like every later
    stage, so one recipient's notifications keep their order through this stage too.
    (Those with keys are ordered per key: the key, not the recipient, decides duplicates.)
    """
    if message.idempotency_key:
        return f"{message.tenant_id}:{message.idempotency_key}".encode()
    return f"{message.tenant_id}:{message.recipient_id}".encode()


async def _accept(event: faust.EventT, message: IntakeMessage) -> None:
    now = clock.now()
    record = idempotency.record_name(event.message.topic, event.message.partition, event.message.offset)
    if message.idempotency_key:
        owner, already = idempotency.claim(event.key, message.id, now, record)
        if owner == message.id and already:
            logger.info("notification %s was accepted already; this copy is not", message.id)
            return
        if owner != message.id:
            logger.info(
                "notification %s (tenant %s) repeats idempotency key %r of %s; not sent again",
                message.id,
                message.tenant_id,
                message.idempotency_key,
                owner,
            )
            return
    pool = await resources.db()
    await through_outages(
        lambda: notifications.store_accepted(pool, message, idempotency.retention_seconds()),
        f"store {message.id}",
    )
    notification = Notification(**message.model_dump(exclude={"v"}))
    NOTIFICATIONS_ENQUEUED.labels(channel=notification.channel.value).inc()
    key = str(notification.id).encode()
    scheduled = message.scheduled_at.timestamp() if message.scheduled_at else None
    if scheduled is not None and scheduled > now:
        event_out = DeliveryEvent.about(notification, Status.SCHEDULED)
        await enqueue(delivery_events_topic, key, event_out.to_bytes())
        await request_hold(notification, scheduled, "enrich")
    else:
        # The event first, so the log shows "queued" before anything a later stage reports.
        await enqueue(
            delivery_events_topic, key, DeliveryEvent.about(notification, Status.QUEUED).to_bytes()
        )
        await enqueue(
            enrich_topics.for_priority(notification.priority),
            notification.recipient_key,
            notification.to_bytes(),
        )
    if message.idempotency_key:
        idempotency.passed_on(event.key, record)


def _maintain(partition: int) -> None:
    now = clock.now()
    if now - _last_sweep.get(partition, 0.0) >= SWEEP_EVERY_SECONDS:
        _last_sweep[partition] = now
        swept = idempotency.sweep(partition, now)
        if swept:
            logger.info("swept %d expired idempotency keys from partition %d", swept, partition)


@lane_agents(accepted_topics, "accept")
async def accept(stream: faust.StreamT) -> None:
    async for event in stream.events():
        if event.key == MAINTENANCE_KEY:
            _maintain(event.message.partition)
            continue
        try:
            message = IntakeMessage.model_validate_json(event.value)
        except ValidationError as exc:
            # Only NotifyHub writes here; something else did, and it is kept with the reason.
            await dead_letter(letter_for(event, f"invalid accepted message: {exc}"))
            continue
        with tracing.consuming(event, "accept", tenant_id=message.tenant_id, notification_id=message.id):
            await guarded(event, lambda e=event, m=message: _accept(e, m), f"accept of {message.id}")


@app.timer(SWEEP_EVERY_SECONDS / 10)
async def tick_accepted_partitions() -> None:
    """Maintenance ticks, one per owned partition, so the sweep runs where the table lives."""
    name = accepted_topics.normal.get_topic_name()
    for tp in app.assignor.assigned_actives():
        if tp.topic == name:
            await enqueue(accepted_topics.normal, MAINTENANCE_KEY, b"{}", partition=tp.partition)
