"""Delivery events: the one stage that writes notification status to PostgreSQL.

Events are written in batches (one transaction each). A batch is acknowledged only
after it is committed; while PostgreSQL is down the stage waits, so no status is lost.
"""

from __future__ import annotations

import logging

import faust
from opentelemetry.trace import SpanKind
from pydantic import ValidationError

from notifyhub import tracing
from notifyhub.agents.reliability import dead_letter, letter_for, through_outages
from notifyhub.app import app, delivery_events_topic, resources
from notifyhub.db import notifications
from notifyhub.messages import DeliveryEvent
from notifyhub.metrics import NOTIFICATIONS_PROCESSED

logger = logging.getLogger(__name__)

# Large batches amortise the transaction; the short wait bounds how stale a
# status read through the API can be.
BATCH_SIZE = 500
BATCH_WAIT_SECONDS = 0.1


async def _persist(events: list[DeliveryEvent]) -> None:
    pool = await resources.db()
    await notifications.apply_events(pool, events)


@app.agent(delivery_events_topic, name="delivery-events")
async def persist_delivery_events(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
        events: list[DeliveryEvent] = []
        spans = []
        for record in batch:
            tracing.observe_consumed(record, "delivery-events")
            try:
                event = DeliveryEvent.model_validate_json(record.value)
            except ValidationError as exc:
                # Events are ours; a foreign message is kept with the reason, not applied.
                await dead_letter(letter_for(record, f"invalid delivery event: {exc}"))
                continue
            events.append(event)
            # One span per event, in its notification's trace, spanning the batch's write.
            spans.append(
                tracing.stage_span(
                    "delivery-events process",
                    tracing.context_of(record.headers),
                    kind=SpanKind.CONSUMER,
                    **{
                        "notifyhub.stage": "delivery-events",
                        "notifyhub.notification_id": event.notification_id,
                        "notifyhub.status": event.status.value,
                    },
                )
            )
        if not events:
            continue
        try:
            await through_outages(lambda e=events: _persist(e), "persist delivery events")
        except Exception as exc:
            # A bug (outages are waited out): the batch is kept, not skipped by a crash.
            logger.exception("persisting %d delivery events failed", len(events))
            for record in batch:
                await dead_letter(letter_for(record, f"internal error persisting: {exc!r}"))
            continue
        finally:
            for span in spans:
                span.end()
        for event in events:
            NOTIFICATIONS_PROCESSED.labels(channel=event.channel.value, status=event.status.value).inc()
