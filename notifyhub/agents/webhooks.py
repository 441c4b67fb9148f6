"""Webhooks: fan events out to the endpoints subscribed to them, then deliver each one.

Fan-out (``cores.webhooks``) finds each tenant's active endpoints subscribed to an event
(``webhooks.subscriptions``) and puts one ``WebhookDelivery`` per endpoint on
``{prefix}.webhooks.outbound``, keyed by endpoint, with a delivery id derived from the
event and the endpoint (so a replayed event makes the same delivery id, which receivers
can use to drop duplicates). Status changes are fanned out by the delivery events stage;
this module fans out the device token events.

Delivery signs each request (``notifyhub.webhooks.signing``), refuses addresses the
policy forbids (SSRF), and logs every attempt in ``webhook_deliveries``. Endpoints are
delivered to concurrently, one endpoint's deliveries in order; a failed attempt
(non-2xx, timeout, connection error) goes to the held stage for a retry after an
exponential backoff with jitter, and after ``NOTIFYHUB_WEBHOOK_MAX_ATTEMPTS`` to
``{prefix}.webhooks.dlq``, visible and replayable through the admin DLQ API.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence

import faust
from mode import Service

from notifyhub.agents.kit import batches, dead_letters, guarded, parsed
from notifyhub.agents.reliability import dead_letter
from notifyhub.app import (
    app,
    device_token_events_topic,
    emit,
    resources,
    settings,
    topics,
    webhook_dead_letter_topic,
    webhooks_outbound_topic,
)
from notifyhub.cores.held import webhook_retry_record
from notifyhub.cores.records import Headers
from notifyhub.cores.webhooks import SourceEvent
from notifyhub.cores.webhooks import fan_out as deliveries_for
from notifyhub.db import webhooks as webhooks_db
from notifyhub.model.messages import DeadLetter, DeviceTokenEvent, WebhookDelivery
from notifyhub.observability import tracing
from notifyhub.observability.metrics import WEBHOOK_DELIVERED, WEBHOOK_FAILED
from notifyhub.rules.backoff import retry_delay
from notifyhub.runtime import clock
from notifyhub.runtime.outages import through_outages
from notifyhub.webhooks.addresses import AddressPolicy
from notifyhub.webhooks.events import device_token_payload
from notifyhub.webhooks.sender import WebhookSender
from notifyhub.webhooks.subscriptions import Subscriptions

logger = logging.getLogger(__name__)

subscriptions = Subscriptions(resources)
sender = WebhookSender(
    AddressPolicy(settings.webhook_allowed_hosts),
    settings.webhook_secret_keys(),
    settings.webhook_concurrency,
    settings.webhook_timeout_seconds,
)


# ---------------------------------------------------------------- fan-out
# (Delivery events are fanned out by their own stage, ``agents/delivery_events.py``.)


async def fan_out(sources: Sequence[SourceEvent]) -> None:
    """Hand one delivery per subscribed endpoint and event to the producer (both the
    delivery events stage and the token events fan-out use it)."""
    subscribed = await through_outages(
        lambda: subscriptions.endpoints((s.tenant_id, s.name) for s in sources),
        f"find webhook endpoints for {len(sources)} events",
    )
    await emit(deliveries_for(sources, subscribed, topics))


async def _fan_out_device_token_events(records: Sequence[faust.EventT[bytes]]) -> None:
    good, letters = parsed(records, DeviceTokenEvent, "device token event")
    sources = []
    for record, event in good:
        name, payload = device_token_payload(event)
        headers = tracing.passed_on(record.headers)
        sources.append(SourceEvent(event.tenant_id, name, event.event_id, payload, headers))
    await dead_letters(letters)
    await fan_out(sources)


@app.agent(device_token_events_topic, name="webhook-device-token-events")
async def webhook_device_token_events(stream: faust.StreamT[bytes]) -> None:
    async for records in batches(stream):
        await guarded(records, _fan_out_device_token_events, "device token events fan-out")


# ---------------------------------------------------------------- delivery


@app.service
class WebhookConnections(Service):
    async def on_stop(self) -> None:
        await sender.close()


async def _deliver_in_order(
    queue: Sequence[WebhookDelivery],
    target: webhooks_db.Target,
    slots: asyncio.Semaphore,
    traces: tracing.Traces,
) -> list[tuple[WebhookDelivery, webhooks_db.Attempt]]:
    """One endpoint's deliveries in order, each in a span of its record's trace (``traces``
    then holds that span's context, for the retry or dead letter that may follow)."""
    attempts = []
    for delivery in queue:
        async with slots:
            with tracing.working_on(
                traces[delivery.delivery_id],
                "webhook",
                tenant_id=delivery.tenant_id,
                **{"notifyhub.webhook.event": delivery.event, "notifyhub.attempt": delivery.attempt},
            ) as span:
                traces[delivery.delivery_id] = tracing.context_with(span)
                attempt = await sender.attempt(delivery, target)
                if not attempt.succeeded:
                    tracing.record_failure(span, attempt.error or "failed")
            attempts.append((delivery, attempt))
    return attempts


async def _after(delivery: WebhookDelivery, attempt: webhooks_db.Attempt, headers: Headers) -> None:
    """Count it; a failure is retried later, or dead-lettered after the last attempt."""
    if attempt.succeeded:
        WEBHOOK_DELIVERED.labels(event=delivery.event).inc()
        return
    final = attempt.refused or delivery.attempt >= settings.webhook_max_attempts
    WEBHOOK_FAILED.labels(event=delivery.event, final=str(final).lower()).inc()
    if not final:
        wait = retry_delay(
            delivery.attempt, settings.webhook_retry_base_seconds, settings.webhook_retry_max_seconds
        )
        following = delivery.model_copy(update={"attempt": delivery.attempt + 1})
        await emit([webhook_retry_record(topics, following, clock.now() + wait, headers)])
        return
    await dead_letter(
        DeadLetter(
            source_topic=webhooks_outbound_topic.get_topic_name(),
            reason=f"webhook {delivery.event} to endpoint {delivery.endpoint_id} failed "
            f"after {delivery.attempt} attempts: {attempt.error}",
            tenant_id=delivery.tenant_id,
            attempts=delivery.attempt,
            message_key=delivery.endpoint_key,
            # As a replay should send it: from the first attempt again.
            message=delivery.model_copy(update={"attempt": 1}).to_bytes(),
        ),
        webhook_dead_letter_topic,
    )


async def _deliver_batch(records: Sequence[faust.EventT[bytes]]) -> None:
    good, letters = parsed(records, WebhookDelivery, "webhook delivery")
    await dead_letters(letters)
    per_endpoint: dict[uuid.UUID, list[WebhookDelivery]] = defaultdict(list)
    traces: tracing.Traces = {}
    headers: dict[uuid.UUID, Headers] = {}
    for record, delivery in good:
        tracing.observe_consumed(record, "webhook")
        per_endpoint[delivery.endpoint_id].append(delivery)
        traces[delivery.delivery_id] = tracing.context_of(record.headers)
        headers[delivery.delivery_id] = tracing.passed_on(record.headers)
    if not per_endpoint:
        return
    ids = list(per_endpoint)
    targets = await through_outages(lambda: _targets(ids), f"load {len(ids)} webhook endpoints")
    for endpoint_id in set(ids) - set(targets):
        logger.info("webhook endpoint %s is gone or inactive; dropping its deliveries", endpoint_id)
    done = await asyncio.gather(
        *(
            _deliver_in_order(queue, targets[endpoint_id], _slots, traces)
            for endpoint_id, queue in per_endpoint.items()
            if endpoint_id in targets
        )
    )
    attempts = [pair for per_queue in done for pair in per_queue]
    await through_outages(
        lambda: _record([attempt for _, attempt in attempts]),
        f"log {len(attempts)} webhook attempts",
    )
    for delivery, attempt in attempts:
        with tracing.within(traces.get(delivery.delivery_id)):
            await _after(delivery, attempt, headers[delivery.delivery_id])


_slots = asyncio.Semaphore(settings.webhook_concurrency)


@app.agent(webhooks_outbound_topic, name="webhook-deliveries")
async def deliver_webhooks(stream: faust.StreamT[bytes]) -> None:
    async for records in batches(stream):
        # Sent again one by one, a failed batch would repeat requests receivers accepted.
        await guarded(records, _deliver_batch, "webhook deliveries", isolate=False)


async def _targets(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, webhooks_db.Target]:
    return await webhooks_db.targets(await resources.db(), ids)


async def _record(attempts: Sequence[webhooks_db.Attempt]) -> None:
    await webhooks_db.record_attempts(await resources.db(), attempts)
