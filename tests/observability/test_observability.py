"""Observability on the real stack: metrics that move, one trace across Kafka, JSON logs."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.api import Tenant, call, eventually, metric, send_notification, wait_for_status
from tests.support.servers.otlp import OtlpCollector, ReceivedSpan
from tests.support.workers import Worker

T = TypeVar("T")


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[OtlpCollector]:
    server = OtlpCollector()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def observed(worker_factory: Callable[..., Worker], collector: OtlpCollector) -> Worker:
    """A worker exporting its spans to the local collector, logging at debug."""
    return worker_factory(
        NOTIFYHUB_TRACE_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        # Export batches every 100 ms instead of every 5 s.
        OTEL_BSP_SCHEDULE_DELAY="100",
        NOTIFYHUB_LOG_LEVEL="debug",
        NOTIFYHUB_LAG_INTERVAL_SECONDS="1",
    )


async def _template(http: aiohttp.ClientSession, worker: Worker, tenant: Tenant) -> str:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates",
        json={"name": "hello", "channel": "sms", "body_template": "Hello {{ name }}"},
        headers=tenant.headers,
    )
    assert status == 201, body
    return cast(str, body["data"]["id"])


# The counters one delivered SMS moves: name → (metric, labels).
SMS = {"channel": "sms"}
COUNTERS = {
    "posts": (
        "notifyhub_http_requests_total",
        {"method": "POST", "route": "/api/v1/notifications", "status": "202"},
    ),
    "enqueued": ("notifyhub_notifications_enqueued_total", SMS),
    "delivered": ("notifyhub_notifications_processed_total", {**SMS, "status": "delivered"}),
    "sends": (
        "notifyhub_provider_send_total",
        {**SMS, "provider": "sink", "outcome": "delivered"},
    ),
    "renders": ("notifyhub_template_render_duration_seconds_count", SMS),
    "consumed": ("notifyhub_queue_consume_lag_seconds_count", {"stage": "send"}),
}


async def _counters(http: aiohttp.ClientSession, worker: Worker) -> dict[str, float]:
    return {
        name: await metric(http, worker, metric_name, **labels) or 0.0
        for name, (metric_name, labels) in COUNTERS.items()
    }


async def test_a_real_send_moves_the_counters(
    observed: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    before = await _counters(http, observed)
    template_id = await _template(http, observed, tenant)
    sent = await send_notification(
        http,
        observed,
        tenant,
        channel="sms",
        recipient_id="metrics-user",
        recipient_address="+15550100",
        template_id=template_id,
        payload={"name": "Ada"},
    )
    await wait_for_status(http, observed, tenant, sent["id"], "delivered")

    async def moved() -> dict[str, float] | None:
        after = await _counters(http, observed)
        grown = {name: after[name] - before[name] for name in after}
        return grown if all(delta >= 1 for delta in grown.values()) else None

    # Status is read from PostgreSQL; the delivery-events stage counts right after writing it.
    grown = await eventually(moved, "every counter to move after one delivered notification")
    assert grown["posts"] == 1 and grown["enqueued"] == 1 and grown["sends"] == 1


async def test_the_consumer_lag_gauge_covers_the_topics_this_worker_owns(
    observed: Worker, http: aiohttp.ClientSession
) -> None:
    async def drained() -> tuple[float] | None:
        value = await metric(
            http, observed, "notifyhub_consumer_lag_messages", topic=observed.topic("send.sms")
        )
        return (value,) if value == 0 else None

    # Measured every second; once the sends above are consumed, nothing waits.
    await eventually(drained, "the lag gauge to report send.sms drained")


def _spans_named(spans: list[ReceivedSpan], name: str) -> list[ReceivedSpan]:
    return [span for span in spans if span.name == name]


async def test_one_trace_follows_a_notification_from_the_request_to_its_delivery_events(
    observed: Worker, tenant: Tenant, http: aiohttp.ClientSession, collector: OtlpCollector
) -> None:
    trace_id, client_span = secrets.token_hex(16), secrets.token_hex(8)
    status, body = await call(
        http,
        "POST",
        f"{observed.base_url}/api/v1/notifications",
        json={
            "channel": "sms",
            "recipient_id": "traced-user",
            "recipient_address": "+15550100",
            "payload": {"body": "traced"},
        },
        headers={**tenant.headers, "traceparent": f"00-{trace_id}-{client_span}-01"},
    )
    assert status == 202, body
    notification_id = body["data"]["id"]
    await wait_for_status(http, observed, tenant, notification_id, "delivered")
    wanted = {
        "POST /api/v1/notifications",
        "enrich process",
        "send process",
        "sink send",
        "delivery-events process",
    }

    def complete() -> list[ReceivedSpan] | None:
        spans = collector.trace(trace_id)
        names = {span.name for span in spans}
        # queued and delivered: two delivery events in the trace.
        events = _spans_named(spans, "delivery-events process")
        return spans if wanted <= names and len(events) >= 2 else None

    spans = await eventually(_async(complete), f"the spans of trace {trace_id}")
    by_id = {span.span_id: span for span in spans}
    [request] = _spans_named(spans, "POST /api/v1/notifications")
    assert request.parent_span_id == client_span, "the request continues the caller's trace"
    assert all(span.parent_span_id in by_id for span in spans if span is not request), (
        "every other span's parent is in the same trace"
    )

    def parent(name: str) -> str:
        [span] = _spans_named(spans, name)
        return by_id[span.parent_span_id].name

    # Each stage is a child of the one that produced its record (across Kafka topics).
    assert parent("enrich process") == "POST /api/v1/notifications"
    assert parent("send process") == "enrich process"
    assert parent("sink send") == "send process"
    assert {by_id[s.parent_span_id].name for s in _spans_named(spans, "delivery-events process")} == {
        "POST /api/v1/notifications",
        "send process",
    }
    [send] = _spans_named(spans, "send process")
    assert send.attributes["notifyhub.notification_id"] == notification_id
    assert send.attributes["notifyhub.result"] == "delivered"
    assert {span.service for span in spans} == {"notifyhub"}


async def test_a_record_produced_to_intake_with_a_traceparent_continues_that_trace(
    observed: Worker,
    tenant: Tenant,
    kafka_producer: AIOKafkaProducer,
    collector: OtlpCollector,
) -> None:
    trace_id, producer_span = secrets.token_hex(16), secrets.token_hex(8)
    recipient = f"kafka-traced-{uuid.uuid4().hex[:6]}"
    message = {
        "v": 1,
        "tenant_id": str(tenant.id),
        "channel": "sms",
        "recipient_id": recipient,
        "recipient_address": "+15550100",
        "payload": {"body": "from a producer"},
    }
    await kafka_producer.send_and_wait(
        observed.topic("intake"),
        json.dumps(message).encode(),
        key=recipient.encode(),
        headers=[("traceparent", f"00-{trace_id}-{producer_span}-01".encode())],
    )

    def reached_the_provider() -> list[ReceivedSpan] | None:
        spans = collector.trace(trace_id)
        return spans if _spans_named(spans, "sink send") else None

    spans = await eventually(_async(reached_the_provider), "the producer's trace to reach the send")
    [intake] = _spans_named(spans, "intake process")
    assert intake.parent_span_id == producer_span
    assert intake.attributes["messaging.destination.name"] == observed.topic("intake")


async def test_logs_are_json_with_the_trace_and_ids_and_never_the_body_or_the_key(
    observed: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    secret_body = f"body-{secrets.token_hex(8)}"
    sent = await send_notification(
        http,
        observed,
        tenant,
        channel="sms",
        recipient_id="logged-user",
        recipient_address="+15550100",
        payload={"body": secret_body},
    )
    await wait_for_status(http, observed, tenant, sent["id"], "delivered")

    def records_about_it() -> list[dict[str, Any]] | None:
        found = [
            record
            for line in observed.log_path.read_text().splitlines()
            if line.startswith("{") and (record := json.loads(line)).get("notification_id") == sent["id"]
        ]
        return found or None

    records = await eventually(_async(records_about_it), "a log record about the notification")
    sending = [r for r in records if r.get("stage") == "send"]
    assert sending, records
    assert sending[0]["tenant_id"] == str(tenant.id)
    assert len(sending[0]["trace_id"]) == 32 and sending[0]["level"] == "debug"
    log = observed.log_path.read_text()
    # Even at debug level: no body, no API key.
    assert secret_body not in log
    assert tenant.api_key not in log


def _async(probe: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    async def run() -> T:
        return probe()

    return run
