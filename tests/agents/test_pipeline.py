"""The whole pipeline on the real stack: intake → enrich → send → delivery events."""

from __future__ import annotations

import json
import uuid

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from notifyhub.model.messages import DeadLetter
from tests.support.api import Tenant, eventually
from tests.support.sink import sunk
from tests.support.stack import Services
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


async def test_http_notification_is_delivered(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, redis_client: redis.Redis
) -> None:
    request = {
        "channel": "email",
        "recipient_id": "user-1",
        "recipient_address": "ada@example.com",
        "payload": {"subject": "Welcome", "body": "Hello Ada"},
    }
    async with http.post(
        f"{worker.base_url}/api/v1/notifications", json=request, headers=tenant.headers
    ) as response:
        assert response.status == 202
        accepted = (await response.json())["data"]
    assert accepted["status"] == "pending"
    assert accepted["tenant_id"] == str(tenant.id)

    async def status() -> str | None:
        async with http.get(
            f"{worker.base_url}/api/v1/notifications/{accepted['id']}", headers=tenant.headers
        ) as response:
            assert response.status == 200
            found = (await response.json())["data"]["status"]
            return found if found == "delivered" else None

    await eventually(status, "the notification to show as delivered")
    [record] = await sunk(redis_client, worker, notification_id=accepted["id"])
    assert record["subject"] == "Welcome"
    assert record["body"] == "Hello Ada"
    assert record["recipient_address"] == "ada@example.com"


async def test_notification_produced_to_kafka_is_delivered(
    worker: Worker,
    tenant: Tenant,
    kafka_producer: AIOKafkaProducer,
    database: asyncpg.Pool,
    redis_client: redis.Redis,
) -> None:
    """A producer outside NotifyHub writes the documented intake message with a plain client."""
    recipient = f"kafka-user-{uuid.uuid4().hex[:6]}"
    message = {
        "v": 1,
        "tenant_id": str(tenant.id),
        "channel": "sms",
        "recipient_id": recipient,
        "recipient_address": "+15550100",
        "payload": {"body": "Your code is 123456"},
    }
    await kafka_producer.send_and_wait(
        worker.topic("intake"), json.dumps(message).encode(), key=recipient.encode()
    )

    async def delivered() -> asyncpg.Record | None:
        return await database.fetchrow(
            "SELECT id, status FROM notifications WHERE tenant_id = $1 AND recipient_id = $2 "
            "AND status = 'delivered'",
            tenant.id,
            recipient,
        )

    row = await eventually(delivered, "the Kafka-produced notification to be delivered")
    [record] = await sunk(redis_client, worker, recipient_id=recipient)
    assert record["notification_id"] == str(row["id"])
    assert record["body"] == "Your code is 123456"

    async def logged() -> list[str] | None:
        # The delivery log is written from the delivery events, a moment after the status.
        rows = await database.fetch(
            "SELECT status FROM delivery_log WHERE notification_id = $1 ORDER BY occurred_at",
            row["id"],
        )
        return [entry["status"] for entry in rows] if len(rows) >= 2 else None

    log = await eventually(logged, "the delivery log to show the delivery")
    assert log == ["queued", "delivered"]


async def test_malformed_messages_go_to_the_dead_letter_topic_and_the_pipeline_keeps_going(
    worker: Worker,
    tenant: Tenant,
    services: Services,
    kafka_producer: AIOKafkaProducer,
    database: asyncpg.Pool,
    redis_client: redis.Redis,
) -> None:
    marker = uuid.uuid4().hex
    # One key for all, so every message shares a partition: the good one is behind the bad.
    key = f"poison-{marker}".encode()
    good_recipient = f"after-poison-{marker}"
    bad = {
        "not JSON": f"not json {marker}".encode(),
        "wrong shape": json.dumps(
            {"tenant_id": str(tenant.id), "channel": "pigeon", "recipient_id": marker}
        ).encode(),
        "unknown tenant": json.dumps(
            {
                "tenant_id": str(uuid.uuid4()),
                "channel": "inapp",
                "recipient_id": marker,
                "payload": {"body": "x"},
            }
        ).encode(),
        "unknown template": json.dumps(
            {
                "tenant_id": str(tenant.id),
                "channel": "email",
                "recipient_id": marker,
                "recipient_address": "a@example.com",
                "template_id": f"no-such-template-{marker}",
            }
        ).encode(),
        "no address": json.dumps(
            {
                "tenant_id": str(tenant.id),
                "channel": "sms",
                "recipient_id": f"no-profile-{marker}",
                "payload": {"body": "x"},
            }
        ).encode(),
        "unknown field": json.dumps(
            {
                "tenant_id": str(tenant.id),
                "channel": "inapp",
                "recipient_id": marker,
                "payload": {"body": "x"},
                "recipient": marker,
            }
        ).encode(),
    }
    for raw in bad.values():
        await kafka_producer.send_and_wait(worker.topic("intake"), raw, key=key)
    good = {
        "tenant_id": str(tenant.id),
        "channel": "inapp",
        "recipient_id": good_recipient,
        "payload": {"body": "still flowing"},
    }
    await kafka_producer.send_and_wait(worker.topic("intake"), json.dumps(good).encode(), key=key)

    await eventually(
        lambda: sunk(redis_client, worker, recipient_id=good_recipient),
        "the good message behind the poison to be delivered",
    )

    letters: dict[bytes, DeadLetter] = {}
    consumer = AIOKafkaConsumer(
        worker.topic("dead-letters"),
        bootstrap_servers=services.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:

        async def all_letters() -> bool:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    letter = DeadLetter.model_validate_json(record.value)
                    letters[letter.message] = letter
            return all(raw in letters for raw in bad.values())

        await eventually(all_letters, "a dead letter for every malformed message")
    finally:
        await consumer.stop()

    reasons = {kind: letters[raw].reason for kind, raw in bad.items()}
    assert "invalid intake message" in reasons["not JSON"]
    assert "channel" in reasons["wrong shape"]
    assert "unknown tenant" in reasons["unknown tenant"]
    assert "recipient: unknown field" in reasons["unknown field"]
    assert "template_id: no active email template" in reasons["unknown template"]
    assert "recipient_address: required for the sms channel" in reasons["no address"]
    assert letters[bad["unknown field"]].tenant_id == tenant.id

    async def persisted() -> list[asyncpg.Record]:
        rows = await database.fetch(
            "SELECT message, reason FROM dead_letters WHERE message = ANY($1::bytea[])",
            list(bad.values()),
        )
        return rows if len(rows) == len(bad) else []

    rows = await eventually(persisted, "the dead letters to be persisted for the admin API")
    assert {bytes(row["message"]): row["reason"] for row in rows} == {
        raw: reasons[kind] for kind, raw in bad.items()
    }
