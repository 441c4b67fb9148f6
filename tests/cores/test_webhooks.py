"""Webhook fan-out: one outbound delivery per endpoint subscribed to an event."""

from __future__ import annotations

import json
import uuid
from typing import Any

from notifyhub.cores.records import Headers
from notifyhub.cores.webhooks import SourceEvent, Subscriptions, fan_out
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import WebhookDelivery

TOPICS = TopicNames("pfx", 3)
TENANT = uuid.UUID("6f1d1d7e-8a57-4c57-9d5f-4f0e6c1f9a10")
OTHER_TENANT = uuid.UUID("0b7c3e52-1d2f-4a8e-8f51-3c9d2e7a6b40")
TRACE = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
FIRST, SECOND = uuid.uuid4(), uuid.uuid4()
PAYLOAD: dict[str, Any] = {
    "event": "notification.delivered",
    "notification_id": "8d9e2f3a-4b5c-4d6e-8f70-112233445566",
    "channel": "email",
    "attempt": 1,
    "recipient": {"id": "u1", "name": "Zoë"},
}


def event(
    name: str = "notification.delivered",
    tenant: uuid.UUID = TENANT,
    *,
    event_id: uuid.UUID | None = None,
    headers: Headers = (),
) -> SourceEvent:
    return SourceEvent(tenant, name, event_id or uuid.uuid4(), PAYLOAD, headers)


def deliveries(events: list[SourceEvent], subscribed: Subscriptions) -> list[WebhookDelivery]:
    return [WebhookDelivery.model_validate_json(r.value) for r in fan_out(events, subscribed, TOPICS)]


def test_each_subscribed_endpoint_gets_one_delivery_keyed_by_endpoint_on_the_outbound_topic() -> None:
    subscribed = {(TENANT, "notification.delivered"): [FIRST, SECOND]}
    records = fan_out([event(headers=TRACE)], subscribed, TOPICS)
    assert [r.topic for r in records] == ["pfx.webhooks.outbound"] * 2
    assert [r.key for r in records] == [str(FIRST).encode(), str(SECOND).encode()]
    assert all(r.headers == TRACE for r in records)
    sent = [WebhookDelivery.model_validate_json(r.value) for r in records]
    assert [(d.endpoint_id, d.tenant_id, d.event, d.attempt) for d in sent] == [
        (FIRST, TENANT, "notification.delivered", 1),
        (SECOND, TENANT, "notification.delivered", 1),
    ]


def test_an_event_nobody_subscribed_to_gets_no_delivery() -> None:
    subscribed = {
        (TENANT, "notification.failed"): [FIRST],
        (OTHER_TENANT, "notification.delivered"): [SECOND],
    }
    assert fan_out([event()], subscribed, TOPICS) == []
    assert fan_out([event()], {(TENANT, "notification.delivered"): []}, TOPICS) == []


def test_each_event_of_a_batch_goes_to_its_own_subscribers() -> None:
    subscribed = {(TENANT, "notification.delivered"): [FIRST], (TENANT, "notification.failed"): [SECOND]}
    batch = [event(), event("notification.failed"), event("notification.queued")]
    assert [(d.event, d.endpoint_id) for d in deliveries(batch, subscribed)] == [
        ("notification.delivered", FIRST),
        ("notification.failed", SECOND),
    ]


def test_the_delivery_id_is_the_same_for_the_same_event_and_endpoint() -> None:
    subscribed = {(TENANT, "notification.delivered"): [FIRST, SECOND]}
    source = event()
    first_time = [d.delivery_id for d in deliveries([source], subscribed)]
    again = [d.delivery_id for d in deliveries([event(event_id=source.event_id)], subscribed)]
    assert first_time == again


def test_the_delivery_id_differs_between_endpoints_and_between_events() -> None:
    subscribed = {(TENANT, "notification.delivered"): [FIRST, SECOND]}
    ids = [d.delivery_id for d in deliveries([event(), event()], subscribed)]
    assert len(ids) == 4
    assert len(set(ids)) == 4


def test_the_body_is_the_payloads_json_and_the_same_for_every_endpoint() -> None:
    subscribed = {(TENANT, "notification.delivered"): [FIRST, SECOND, uuid.uuid4()]}
    bodies = {d.body for d in deliveries([event()], subscribed)}
    (body,) = bodies
    assert json.loads(body) == PAYLOAD
