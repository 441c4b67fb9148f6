"""Delivery events: the one consumer of status changes. It writes them to PostgreSQL and
fans them out to the webhook endpoints subscribed to them, in batches.

Events whose status the stage that made them wrote already (header ``nh-persisted``: the
intake's first statuses, the send stage's outcomes) are not written again; the others
(the HTTP API's, enrich's, cancellations) are written in one statement per batch, status
forward only, with their delivery log rows. A batch is acknowledged only after both;
while PostgreSQL is down the stage waits, so no status is lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import faust

from notifyhub.agents.kit import batches, dead_letters, guarded, parsed
from notifyhub.agents.webhooks import fan_out
from notifyhub.app import app, delivery_events_topic, resources
from notifyhub.cores.records import PERSISTED_HEADER
from notifyhub.cores.webhooks import SourceEvent
from notifyhub.db import notifications
from notifyhub.model.messages import DeliveryEvent
from notifyhub.observability import tracing
from notifyhub.observability.metrics import NOTIFICATIONS_PROCESSED
from notifyhub.runtime.outages import through_outages
from notifyhub.webhooks.events import notification_payload


async def _apply(records: Sequence[faust.EventT[bytes]]) -> None:
    with tracing.batch_spans(records, "delivery-events") as traces:
        good, letters = parsed(records, DeliveryEvent, "delivery event")
        trace_of = dict(zip(records, traces, strict=True))
        unwritten = [event for record, event in good if PERSISTED_HEADER not in record.headers]
        if unwritten:
            pool = await resources.db()
            await through_outages(
                lambda: notifications.record_events(pool, unwritten),
                f"persist {len(unwritten)} delivery events",
            )
        sources = []
        for record, event in good:
            tracing.annotate(
                trace_of[record],
                **{
                    "notifyhub.notification_id": event.notification_id,
                    "notifyhub.status": event.status,
                },
            )
            name, payload = notification_payload(event)
            headers = tracing.passed_on(record.headers, trace_of[record])
            sources.append(SourceEvent(event.tenant_id, name, event.event_id, payload, headers))
        await dead_letters(letters)
        await fan_out(sources)
        processed = Counter((event.channel.value, event.status.value) for _, event in good)
        for (channel, status), count in processed.items():
            NOTIFICATIONS_PROCESSED.labels(channel=channel, status=status).inc(count)


@app.agent(delivery_events_topic, name="delivery-events")
async def delivery_events(stream: faust.StreamT[bytes]) -> None:
    async for records in batches(stream):
        await guarded(records, _apply, "delivery events")
