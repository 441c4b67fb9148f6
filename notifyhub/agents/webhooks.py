"""Webhooks: fan events out to the endpoints subscribed to them, then deliver each one.

Fan-out reads the delivery events (status changes) and the device token events, finds
each tenant's active endpoints subscribed to the event (one query per batch), and puts
one ``WebhookDelivery`` per endpoint on ``{prefix}.webhooks.outbound``, keyed by
endpoint, with a delivery id derived from the event and the endpoint (so a replayed
event makes the same delivery id, which receivers can use to drop duplicates).

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
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import aiohttp
import faust
from mode import Service
from opentelemetry import context as otel_context
from pydantic import ValidationError
from pydantic_core import to_json

from notifyhub import clock, tracing
from notifyhub.agents.held import request_webhook_retry
from notifyhub.agents.reliability import dead_letter, letter_for, through_outages
from notifyhub.app import (
    app,
    delivery_events_topic,
    device_token_events_topic,
    enqueue,
    resources,
    settings,
    webhook_dead_letter_topic,
    webhooks_outbound_topic,
)
from notifyhub.db import webhooks as webhooks_db
from notifyhub.delivery.backoff import retry_delay
from notifyhub.messages import DeadLetter, DeliveryEvent, DeviceTokenEvent, WebhookDelivery
from notifyhub.metrics import WEBHOOK_DELIVERED, WEBHOOK_FAILED
from notifyhub.webhooks import endpoint_secrets, signing
from notifyhub.webhooks.addresses import AddressPolicy, AddressRefused, GuardedResolver
from notifyhub.webhooks.events import device_token_payload, notification_payload

logger = logging.getLogger(__name__)

BATCH_SIZE = 200
BATCH_WAIT_SECONDS = 0.05
# Delivery ids are derived from (event, endpoint) under this namespace.
DELIVERY_NAMESPACE = uuid.UUID("0f3c8a2e-6d1b-4c55-9d7e-77656268f0f1")
# Kept in the log of an attempt: enough of an error to see what went wrong.
MAX_ERROR_LENGTH = 500

policy = AddressPolicy(settings.webhook_allowed_hosts)


# ---------------------------------------------------------------- fan-out


# (tenant, event name, source event id, payload, the source record's trace context)
SourceEvent = tuple[uuid.UUID, str, str, dict[str, Any], otel_context.Context]


async def _fan_out(events: Sequence[SourceEvent]) -> None:
    """One outbound delivery per subscribed endpoint, in the source event's trace."""
    wanted = sorted({(tenant, name) for tenant, name, *_ in events})
    subscribed = await through_outages(
        lambda: _subscribed(wanted), f"find webhook endpoints for {len(wanted)} events"
    )
    for tenant, name, source_id, payload, trace in events:
        for endpoint_id in subscribed.get((tenant, name), []):
            delivery = WebhookDelivery(
                delivery_id=uuid.uuid5(DELIVERY_NAMESPACE, f"{source_id}:{endpoint_id}"),
                endpoint_id=endpoint_id,
                tenant_id=tenant,
                event=name,
                body=to_json(payload).decode(),
            )
            with tracing.within(trace):
                await enqueue(webhooks_outbound_topic, delivery.endpoint_key, delivery.to_bytes())


async def _subscribed(
    wanted: Sequence[tuple[uuid.UUID, str]],
) -> dict[tuple[uuid.UUID, str], list[uuid.UUID]]:
    return await webhooks_db.subscribed(await resources.db(), wanted)


@app.agent(delivery_events_topic, name="webhook-status-events")
async def webhook_status_events(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
        events = []
        for record in batch:
            try:
                event = DeliveryEvent.model_validate_json(record.value)
            except ValidationError:
                continue  # the delivery events writer dead-letters it
            name, payload = notification_payload(event)
            trace = tracing.context_of(record.headers)
            events.append((event.tenant_id, name, str(event.event_id), payload, trace))
        await _fan_out(events)


@app.agent(device_token_events_topic, name="webhook-device-token-events")
async def webhook_device_token_events(stream: faust.StreamT) -> None:
    async for batch in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
        events = []
        for record in batch:
            try:
                event = DeviceTokenEvent.model_validate_json(record.value)
            except ValidationError as exc:
                logger.error("skipping a malformed device token event: %s", exc)
                continue
            name, payload = device_token_payload(event)
            trace = tracing.context_of(record.headers)
            events.append((event.tenant_id, name, str(event.event_id), payload, trace))
        await _fan_out(events)


# ---------------------------------------------------------------- delivery


class Outbound:
    """The worker's HTTP client for webhooks: addresses checked at every connection."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(policy), limit=settings.webhook_concurrency
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_seconds),
                headers={"User-Agent": "NotifyHub-Webhooks/1"},
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


outbound = Outbound()


@app.service
class WebhookConnections(Service):
    async def on_stop(self) -> None:
        await outbound.close()


async def _attempt(delivery: WebhookDelivery, target: webhooks_db.Target) -> webhooks_db.Attempt:
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    try:
        policy.check_url(target.url)
        secret = endpoint_secrets.decrypt(
            settings.webhook_secret_key.get_secret_value(), target.secret_ciphertext
        )
        body = delivery.body.encode()
        headers = signing.headers(
            secret, str(delivery.delivery_id), delivery.event, int(time.time()), body
        )
        async with outbound.session().post(
            target.url, data=body, headers=headers, allow_redirects=False
        ) as response:
            status = response.status
            if not 200 <= status < 300:
                error = f"HTTP {status}: {(await response.text())[:200]}"
    except AddressRefused as exc:
        error = f"refused: {exc}"
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
    return webhooks_db.Attempt(
        delivery_id=delivery.delivery_id,
        endpoint_id=delivery.endpoint_id,
        tenant_id=delivery.tenant_id,
        event=delivery.event,
        attempt=delivery.attempt,
        status_code=status,
        error=error[:MAX_ERROR_LENGTH] if error else None,
        succeeded=error is None,
        duration_ms=(time.perf_counter() - started) * 1000,
    )


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
                attempt = await _attempt(delivery, target)
                if not attempt.succeeded:
                    tracing.record_failure(span, attempt.error or "failed")
            attempts.append((delivery, attempt))
    return attempts


async def _after(delivery: WebhookDelivery, attempt: webhooks_db.Attempt) -> None:
    """Count it; a failure is retried later, or dead-lettered after the last attempt."""
    if attempt.succeeded:
        WEBHOOK_DELIVERED.labels(event=delivery.event).inc()
        return
    final = delivery.attempt >= settings.webhook_max_attempts or (attempt.error or "").startswith(
        "refused"
    )
    WEBHOOK_FAILED.labels(event=delivery.event, final=str(final).lower()).inc()
    if not final:
        wait = retry_delay(
            delivery.attempt, settings.webhook_retry_base_seconds, settings.webhook_retry_max_seconds
        )
        await request_webhook_retry(
            delivery.model_copy(update={"attempt": delivery.attempt + 1}), clock.now() + wait
        )
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


@app.agent(webhooks_outbound_topic, name="webhook-deliveries")
async def deliver_webhooks(stream: faust.StreamT) -> None:
    slots = asyncio.Semaphore(settings.webhook_concurrency)
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
        per_endpoint: dict[uuid.UUID, list[WebhookDelivery]] = defaultdict(list)
        traces: tracing.Traces = {}
        for event in events:
            tracing.observe_consumed(event, "webhook")
            try:
                delivery = WebhookDelivery.model_validate_json(event.value)
            except ValidationError as exc:
                await dead_letter(letter_for(event, f"invalid webhook delivery: {exc}"))
                continue
            per_endpoint[delivery.endpoint_id].append(delivery)
            traces[delivery.delivery_id] = tracing.context_of(event.headers)
        if not per_endpoint:
            continue
        ids = list(per_endpoint)
        targets = await through_outages(lambda i=ids: _targets(i), f"load {len(ids)} webhook endpoints")
        for endpoint_id in set(ids) - set(targets):
            logger.info("webhook endpoint %s is gone or inactive; dropping its deliveries", endpoint_id)
        done = await asyncio.gather(
            *(
                _deliver_in_order(queue, targets[endpoint_id], slots, traces)
                for endpoint_id, queue in per_endpoint.items()
                if endpoint_id in targets
            )
        )
        attempts = [pair for per_queue in done for pair in per_queue]
        await through_outages(
            lambda a=attempts: _record([attempt for _, attempt in a]),
            f"log {len(attempts)} webhook attempts",
        )
        for delivery, attempt in attempts:
            with tracing.within(traces.get(delivery.delivery_id)):
                await _after(delivery, attempt)


async def _targets(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, webhooks_db.Target]:
    return await webhooks_db.targets(await resources.db(), ids)


async def _record(attempts: Sequence[webhooks_db.Attempt]) -> None:
    await webhooks_db.record_attempts(await resources.db(), attempts)
