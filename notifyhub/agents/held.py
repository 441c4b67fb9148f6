"""Held: keep notifications until their time, then release them; one mechanism for
``scheduled_at``, quiet hours, send retries and webhook retries.

Requests arrive on the held topic keyed by recipient; a timer on every worker sends a
tick into each held partition it owns, and the agent consuming that partition releases
what is due. The table is written only from the agent (never from the timer), so it is
durable through the changelog: it survives restarts and moves with its partition.
A released notification goes back through enrich (preferences, quiet hours and caps are
decided at send time), or to its channel's sender. Cancel needs nothing here: the send
stage will not claim a cancelled notification.
"""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from notifyhub import clock, tracing
from notifyhub.agents.reliability import dead_letter, guarded, letter_for
from notifyhub.app import app, enqueue, enrich_topics, held_topic, send_topics, webhooks_outbound_topic
from notifyhub.messages import HeldMessage, HoldRequest, Notification, Tick, WebhookDelivery
from notifyhub.tables.held import forget_partitions, hold, release_due

logger = logging.getLogger(__name__)

# How late a held notification may be released at most (plus the pipeline's latency).
TICK_SECONDS = 1.0
TICK_KEY = b"tick"


def destination_topic(destination: str, notification: Notification) -> faust.TopicT:
    lanes = enrich_topics if destination == "enrich" else send_topics[notification.channel]
    return lanes.for_priority(notification.priority)


async def request_hold(notification: Notification, release_at: float, destination: str) -> None:
    """Ask the held stage to keep ``notification`` until ``release_at``."""
    request = HoldRequest(notification=notification, release_at=release_at, destination=destination)
    await enqueue(held_topic, notification.recipient_key, request.to_bytes())


async def request_webhook_retry(delivery: WebhookDelivery, release_at: float) -> None:
    """Ask the held stage to keep a webhook delivery until its next attempt."""
    request = HoldRequest(webhook=delivery, release_at=release_at, destination="webhook")
    await enqueue(held_topic, delivery.endpoint_key, request.to_bytes())


async def _handle(event: faust.EventT, message: HoldRequest | Tick) -> None:
    if isinstance(message, HoldRequest):
        notification = message.notification
        with tracing.consuming(event, "held", notification_id=notification and notification.id):
            # The request's trace is kept with it, for what is released later.
            hold(event.key, message, clock.now(), tracing.carrier())
        return
    for released in release_due(event.message.partition, clock.now(), event.message.offset):
        headers = tracing.as_headers(released.trace)
        if released.webhook is not None:
            delivery = released.webhook
            await enqueue(
                webhooks_outbound_topic, delivery.endpoint_key, delivery.to_bytes(), headers=headers
            )
            continue
        notification = released.notification
        assert notification is not None  # a hold carries one or the other
        logger.info(
            "releasing held notification %s to %s (partition %d, offset %d)",
            notification.id,
            released.destination,
            event.message.partition,
            event.message.offset,
        )
        await enqueue(
            destination_topic(released.destination, notification),
            notification.recipient_key,
            notification.to_bytes(),
            headers=headers,
        )


@app.agent(held_topic, name="held")
async def held(stream: faust.StreamT) -> None:
    async for event in stream.events():
        try:
            message = HeldMessage.validate_json(event.value)
        except ValidationError as exc:
            await dead_letter(letter_for(event, f"invalid held message: {exc}"))
            continue
        await guarded(event, lambda e=event, m=message: _handle(e, m), "held")


@app.timer(TICK_SECONDS)
async def tick_held_partitions() -> None:
    """Time flows into the held stage as messages: one tick per owned held partition."""
    name = held_topic.get_topic_name()
    for tp in app.assignor.assigned_actives():
        if tp.topic == name:
            await enqueue(held_topic, TICK_KEY, b'{"v":1,"kind":"tick"}', partition=tp.partition)


@app.on_rebalance_complete.connect
async def _rescan_after_rebalance(sender: object, **kwargs: object) -> None:
    forget_partitions()
