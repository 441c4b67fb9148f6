"""Priority on the real stack: the most urgent take the priority lanes, whichever way they
came in, and the upgrade turns stored priorities around once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any, cast

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from notifyhub.db.migrate import available_migrations, migrate
from tests.support.api import Tenant, eventually, notification_of, send_notification
from tests.support.stack import Services
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

PRIORITY_MIGRATION = "0011_priority"


async def lanes_taken(services: Services, topics: Sequence[str], ids: set[str]) -> dict[str, str]:
    """Which of ``topics`` each notification in ``ids`` travelled (id → topic)."""
    seen: dict[str, str] = {}
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=services.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:

        async def all_seen() -> bool:
            for partition, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    found = json.loads(record.value).get("id")
                    if found in ids:
                        seen[found] = partition.topic
            return seen.keys() == ids

        await eventually(all_seen, "every notification on a send topic")
    finally:
        await consumer.stop()
    return seen


async def test_priority_1_takes_the_priority_lane_and_10_the_normal_one(
    worker: Worker,
    services: Services,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    kafka_producer: AIOKafkaProducer,
) -> None:
    def over_http(priority: int) -> dict[str, Any]:
        return {
            "channel": "inapp",
            "recipient_id": f"lanes-{priority}",
            "priority": priority,
            "payload": {"body": "x"},
        }

    urgent = (await send_notification(http, worker, tenant, **over_http(1)))["id"]
    bulk = (await send_notification(http, worker, tenant, **over_http(10)))["id"]

    async def produce(**fields: object) -> str:
        """A Kafka producer's intake record on the normal intake lane; its notification id."""
        message = {
            "id": str(uuid.uuid4()),
            "tenant_id": str(tenant.id),
            "channel": "inapp",
            "recipient_id": "lanes-kafka",
            "payload": {"body": "x"},
            **fields,
        }
        await kafka_producer.send_and_wait(worker.topic("intake"), json.dumps(message).encode())
        return cast(str, message["id"])

    urgent_v2 = await produce(v=2, priority=1)
    urgent_v1 = await produce(v=1, priority=10)
    bulk_unversioned = await produce(priority=1)

    send = worker.topic("send.inapp")
    lanes = await lanes_taken(
        services,
        [send, f"{send}.priority"],
        {urgent, bulk, urgent_v2, urgent_v1, bulk_unversioned},
    )
    assert lanes == {
        urgent: f"{send}.priority",
        urgent_v2: f"{send}.priority",
        urgent_v1: f"{send}.priority",
        bulk: send,
        bulk_unversioned: send,
    }
    assert (await notification_of(http, worker, tenant, urgent_v1))["priority"] == 1
    assert (await notification_of(http, worker, tenant, bulk_unversioned))["priority"] == 10


async def test_the_upgrade_turns_stored_priorities_around_once(empty_database: str) -> None:
    before_priority = [m for m in available_migrations() if m.version < PRIORITY_MIGRATION]
    await migrate(empty_database, before_priority)
    conn = await asyncpg.connect(empty_database)
    try:
        tenant = uuid.uuid4()
        await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, 'upgrade')", tenant)
        written = {uuid.uuid4(): old for old in range(1, 11)}  # version 1: 10 the most urgent
        await conn.executemany(
            """INSERT INTO notifications (id, tenant_id, channel, recipient_id, priority, status)
               VALUES ($1, $2, 'inapp', 'u1', $3, 'queued')""",
            [(id_, tenant, old) for id_, old in written.items()],
        )
        assert PRIORITY_MIGRATION in await migrate(empty_database)
        assert await migrate(empty_database) == []

        rows = await conn.fetch("SELECT id, priority FROM notifications")
        assert {row["id"]: row["priority"] for row in rows} == {
            id_: 11 - old for id_, old in written.items()
        }
    finally:
        await conn.close()
