"""A notification some stage cannot process ends ``failed`` with the reason, its dead letter
names it, and replaying the letter reopens it and lets the pipeline deliver it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from notifyhub.db import notifications
from notifyhub.model.channels import Channel
from notifyhub.model.messages import IntakeMessage
from tests.support.api import Tenant, call, eventually, send_notification, wait_for_status
from tests.support.sink import sunk
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

# The preferences agent applies an update within this long (NotifyHub's contract: a second).
PREFERENCE_APPLIED_SECONDS = 1.5


async def letters_of(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str
) -> list[dict[str, Any]]:
    headers = {**worker.admin_headers, "X-Tenant-ID": str(tenant.id)}
    status, body = await call(http, "GET", f"{worker.base_url}/internal/dlq", headers=headers)
    assert status == 200, body
    return [letter for letter in body["data"] if letter["notification_id"] == notification_id]


async def set_preference(
    kafka_producer: AIOKafkaProducer,
    worker: Worker,
    tenant: Tenant,
    user: str,
    preference: dict[str, Any] | None,
) -> None:
    """Straight onto the preference updates topic, as the API would publish it (the API
    itself refuses an unknown timezone)."""
    update = {"v": 1, "tenant_id": str(tenant.id), "user_id": user, "channel": "inapp"}
    if preference is not None:
        update["preference"] = preference
    await kafka_producer.send_and_wait(
        worker.topic("preference-updates"),
        json.dumps(update).encode(),
        key=f"{tenant.id}:{user}".encode(),
    )
    await asyncio.sleep(PREFERENCE_APPLIED_SECONDS)


async def test_a_notification_enrich_cannot_process_fails_and_its_replay_delivers_it(
    worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    kafka_producer: AIOKafkaProducer,
    redis_client: redis.Redis,
) -> None:
    # Quiet hours in a timezone that does not exist: enrich raises on this recipient's
    # notifications (a bug-shaped failure, not a decision), and dead-letters them.
    user = f"mars-{uuid.uuid4().hex[:6]}"
    broken = {"quiet_hours_start": "00:00", "quiet_hours_end": "00:01", "timezone": "Mars/Olympus"}
    await set_preference(kafka_producer, worker, tenant, user, broken)
    accepted = await send_notification(
        http, worker, tenant, channel="inapp", recipient_id=user, payload={"body": "hello Mars"}
    )

    final = await wait_for_status(http, worker, tenant, accepted["id"])
    assert final["status"] == "failed"
    assert final["status_reason"].startswith("dead-lettered: internal error in enrich")
    assert "Mars/Olympus" in final["status_reason"]
    [letter] = await eventually(
        lambda: letters_of(http, worker, tenant, accepted["id"]), "the notification's dead letter"
    )
    assert letter["source_topic"] == worker.topic("enrich")

    # Fixed; the replay reopens the notification and the pipeline delivers it.
    await set_preference(kafka_producer, worker, tenant, user, None)
    headers = {**worker.admin_headers, "X-Tenant-ID": str(tenant.id)}
    status, body = await call(
        http, "POST", f"{worker.base_url}/internal/dlq/{letter['id']}/replay", headers=headers
    )
    assert status == 200, body
    delivered = await wait_for_status(http, worker, tenant, accepted["id"], "delivered")
    assert delivered["status"] == "delivered"
    [record] = await sunk(redis_client, worker, notification_id=accepted["id"])
    assert record["body"] == "hello Mars"


def notification_json(message: IntakeMessage) -> dict[str, Any]:
    """The notification as enrich takes it, with a channel that does not exist."""
    return {
        "v": 1,
        "id": str(message.id),
        "tenant_id": str(message.tenant_id),
        "channel": "fax",
        "recipient_id": message.recipient_id,
        "payload": message.payload,
    }


def hold_of(notification: dict[str, Any]) -> dict[str, Any]:
    return {
        "v": 1,
        "kind": "hold",
        "notification": notification,
        "release_at": 0,
        "destination": "enrich",
    }


@pytest.mark.parametrize(
    ("topic", "wrap", "reason"),
    [
        ("enrich", lambda notification: notification, "invalid enrich message"),
        ("held", hold_of, "invalid held message"),
    ],
    ids=["enrich", "held"],
)
async def test_a_malformed_record_fails_the_notification_it_names(
    worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    database: asyncpg.Pool,
    kafka_producer: AIOKafkaProducer,
    topic: str,
    wrap: Callable[[dict[str, Any]], dict[str, Any]],
    reason: str,
) -> None:
    message = IntakeMessage(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        channel=Channel.INAPP,
        recipient_id="r",
        payload={"body": "b"},
    )
    await notifications.insert_pending(database, [message])
    value = json.dumps(wrap(notification_json(message))).encode()
    await kafka_producer.send_and_wait(worker.topic(topic), value, key=f"{tenant.id}:r".encode())

    final = await wait_for_status(http, worker, tenant, str(message.id))
    assert final["status"] == "failed"
    assert final["status_reason"].startswith(f"dead-lettered: {reason}")
    [letter] = await eventually(
        lambda: letters_of(http, worker, tenant, str(message.id)), "the notification's dead letter"
    )
    assert letter["source_topic"] == worker.topic(topic)
