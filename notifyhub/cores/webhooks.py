"""Webhook fan-out: one outbound delivery per endpoint subscribed to an event.

A delivery's id is derived from the source event's id and the endpoint, so an event read
again makes the same delivery id (receivers can drop the copy); its body is fixed here, so
every attempt sends the same bytes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic_core import to_json

from notifyhub.cores.records import Headers, Outgoing
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import WebhookDelivery

# Delivery ids are derived from (event, endpoint) under this namespace.
DELIVERY_NAMESPACE = uuid.UUID("0f3c8a2e-6d1b-4c55-9d7e-77656268f0f1")

Subscriptions = Mapping[tuple[uuid.UUID, str], Sequence[uuid.UUID]]


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """An event to fan out: its tenant, name, id, webhook payload, and the record's headers."""

    tenant_id: uuid.UUID
    name: str
    event_id: uuid.UUID
    payload: dict[str, Any]
    headers: Headers = ()


def fan_out(
    events: Sequence[SourceEvent], subscribed: Subscriptions, topics: TopicNames
) -> list[Outgoing]:
    """One delivery per subscribed endpoint and event, keyed by endpoint."""
    records: list[Outgoing] = []
    for event in events:
        endpoints = subscribed.get((event.tenant_id, event.name), ())
        if not endpoints:
            continue
        body = to_json(event.payload).decode()
        for endpoint_id in endpoints:
            delivery = WebhookDelivery(
                delivery_id=uuid.uuid5(DELIVERY_NAMESPACE, f"{event.event_id}:{endpoint_id}"),
                endpoint_id=endpoint_id,
                tenant_id=event.tenant_id,
                event=event.name,
                body=body,
            )
            records.append(
                Outgoing(
                    topics.webhooks_outbound, delivery.endpoint_key, delivery.to_bytes(), event.headers
                )
            )
    return records
