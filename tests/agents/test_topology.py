"""The topology's promises on the real stack: idempotency across sources, held notifications
(schedules, quiet hours) through restarts, caps, priority lanes, order, table inspection."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from tests.support.api import (
    Tenant,
    call,
    eventually,
    notification_of,
    send_notification,
    wait_for_status,
)
from tests.support.moved_clock import MovedClock
from tests.support.sink import sunk
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


@pytest.fixture
def clock(tmp_path: Path) -> MovedClock:
    return MovedClock(tmp_path / "clock-offset")


async def test_a_duplicate_from_http_and_from_kafka_is_delivered_once(
    worker: Worker,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    kafka_producer: AIOKafkaProducer,
    redis_client: redis.Redis,
) -> None:
    key = f"welcome-{uuid.uuid4()}"
    recipient = f"dup-{uuid.uuid4().hex[:6]}"
    first = await send_notification(
        http,
        worker,
        tenant,
        channel="inapp",
        recipient_id=recipient,
        payload={"body": "once"},
        idempotency_key=key,
    )
    again = await send_notification(
        http,
        worker,
        tenant,
        channel="inapp",
        recipient_id=recipient,
        payload={"body": "once"},
        idempotency_key=key,
    )
    assert again["id"] == first["id"]
    for _ in range(2):  # the same key from a Kafka producer, twice, with ids of its own
        message = {
            "tenant_id": str(tenant.id),
            "channel": "inapp",
            "recipient_id": recipient,
            "payload": {"body": "once"},
            "idempotency_key": key,
            "id": str(uuid.uuid4()),
        }
        await kafka_producer.send_and_wait(
            worker.topic("intake"), json.dumps(message).encode(), key=recipient.encode()
        )
    # A marker behind them on the same recipient: once it is sent, the duplicates were seen.
    marker = await send_notification(
        http, worker, tenant, channel="inapp", recipient_id=recipient, payload={"body": "marker"}
    )
    await eventually(lambda: sunk(redis_client, worker, notification_id=marker["id"]), "the marker")
    await asyncio.sleep(0.5)
    sent = await sunk(redis_client, worker, recipient_id=recipient)
    assert sorted(r["body"] for r in sent) == ["marker", "once"]


async def test_a_duplicate_only_from_kafka_is_delivered_once(
    worker: Worker,
    tenant: Tenant,
    kafka_producer: AIOKafkaProducer,
    redis_client: redis.Redis,
) -> None:
    recipient = f"kdup-{uuid.uuid4().hex[:6]}"
    for body in ("first", "second", "marker"):
        message = {
            "tenant_id": str(tenant.id),
            "channel": "inapp",
            "recipient_id": recipient,
            "payload": {"body": body},
        }
        if body != "marker":
            message["idempotency_key"] = "k-1"
        await kafka_producer.send_and_wait(
            worker.topic("intake"), json.dumps(message).encode(), key=recipient.encode()
        )
    await eventually(
        lambda: sunk(redis_client, worker, recipient_id=recipient, body="marker"), "the marker"
    )
    await asyncio.sleep(0.5)
    assert sorted(r["body"] for r in await sunk(redis_client, worker, recipient_id=recipient)) == [
        "first",
        "marker",
    ]


async def test_notifications_for_one_recipient_are_sent_in_order(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    recipient = f"ordered-{uuid.uuid4().hex[:6]}"
    for n in range(12):
        await send_notification(
            http,
            worker,
            tenant,
            channel="inapp",
            recipient_id=recipient,
            payload={"body": str(n)},
        )

    seen: list[dict[str, Any]] = []

    async def all_sent() -> list[dict[str, Any]]:
        seen[:] = await sunk(redis_client, worker, recipient_id=recipient)
        return seen if len(seen) >= 12 else []

    records = await eventually(all_sent, "all 12 to be sent")
    assert [r["body"] for r in records] == [str(n) for n in range(12)]


async def test_the_frequency_cap_drops_what_is_over_it(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    user = f"capped-{uuid.uuid4().hex[:6]}"
    await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/{user}/preferences/push",
        json={"frequency_cap": 2, "frequency_window_minutes": 60},
        headers=tenant.headers,
    )
    await asyncio.sleep(1.0)  # the preference reaches the pipeline within a second
    sent = [
        await send_notification(
            http,
            worker,
            tenant,
            channel="push",
            recipient_id=user,
            recipient_address="device-1",
            payload={"body": str(n)},
        )
        for n in range(3)
    ]
    finals = [
        await wait_for_status(http, worker, tenant, n["id"], wanted)
        for n, wanted in zip(sent, ("delivered", "delivered", "dropped"), strict=True)
    ]
    assert finals[2]["status_reason"] == "frequency cap reached: 2 push notifications per 60 min"


async def test_the_default_cap_applies_without_a_preference(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    """NotifyHub's defaults: 3 SMS per hour per recipient."""
    user = f"sms-{uuid.uuid4().hex[:6]}"
    sent = [
        await send_notification(
            http,
            worker,
            tenant,
            channel="sms",
            recipient_id=user,
            recipient_address="+15550100",
            payload={"body": str(n)},
        )
        for n in range(4)
    ]
    final = await wait_for_status(http, worker, tenant, sent[3]["id"], "dropped")
    assert final["status_reason"] == "frequency cap reached: 3 sms notifications per 60 min"


async def test_quiet_hours_defer_then_deliver_when_they_end(
    worker_factory: Callable[..., Worker],
    clock: MovedClock,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    worker = worker_factory(**clock.worker_settings())
    user = f"sleepy-{uuid.uuid4().hex[:6]}"
    now = clock.now()
    window = {
        "quiet_hours_start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "quiet_hours_end": (now + timedelta(hours=1)).strftime("%H:%M"),
        "timezone": "UTC",
    }
    await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/{user}/preferences/email",
        json=window,
        headers=tenant.headers,
    )
    await asyncio.sleep(1.0)
    accepted = await send_notification(
        http,
        worker,
        tenant,
        channel="email",
        recipient_id=user,
        recipient_address="s@example.com",
        payload={"body": "good morning"},
    )
    await wait_for_status(http, worker, tenant, accepted["id"], "deferred")

    status, state = await call(
        http,
        "GET",
        f"{worker.base_url}/internal/tables/{tenant.id}/recipients/{user}",
        headers=worker.admin_headers,
    )
    assert status == 200
    [held] = state["data"]["held"]
    assert held["notification_id"] == accepted["id"] and held["destination"] == "enrich"
    assert state["data"]["preferences"]["email"]["quiet_hours_end"] == window["quiet_hours_end"]
    assert await sunk(redis_client, worker, notification_id=accepted["id"]) == []

    clock.advance(timedelta(hours=2))
    await wait_for_status(http, worker, tenant, accepted["id"], "delivered")
    assert len(await sunk(redis_client, worker, notification_id=accepted["id"])) == 1
    worker.stop()


async def test_a_scheduled_notification_is_delivered_once_after_a_worker_restart(
    worker_factory: Callable[..., Worker],
    clock: MovedClock,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    first = worker_factory(**clock.worker_settings())
    at = (clock.now() + timedelta(hours=1)).isoformat()
    accepted = await send_notification(
        http,
        first,
        tenant,
        channel="push",
        recipient_id="later",
        recipient_address="device-1",
        payload={"body": "it is time"},
        scheduled_at=at,
    )
    doomed = await send_notification(
        http,
        first,
        tenant,
        channel="push",
        recipient_id="later",
        recipient_address="device-1",
        payload={"body": "cancel me"},
        scheduled_at=at,
    )
    await wait_for_status(http, first, tenant, accepted["id"], "scheduled")
    status, body = await call(
        http, "DELETE", f"{first.base_url}/api/v1/notifications/{doomed['id']}", headers=tenant.headers
    )
    assert status == 200 and body["data"]["status"] == "cancelled"

    first.stop()
    second = worker_factory(deployment=first.topic_prefix, **clock.worker_settings())
    await asyncio.sleep(2.0)  # ticks happen; nothing is due yet
    assert (await notification_of(http, second, tenant, accepted["id"]))["status"] == "scheduled"

    clock.advance(timedelta(hours=1, minutes=1))
    await wait_for_status(http, second, tenant, accepted["id"], "delivered")
    await asyncio.sleep(1.0)
    assert len(await sunk(redis_client, second, notification_id=accepted["id"])) == 1
    assert await sunk(redis_client, second, notification_id=doomed["id"]) == []
    assert (await notification_of(http, second, tenant, doomed["id"]))["status"] == "cancelled"
    second.stop()


async def test_a_high_priority_notification_overtakes_a_backlog_of_5000(
    worker_factory: Callable[..., Worker],
    tenant: Tenant,
    kafka_producer: AIOKafkaProducer,
    redis_client: redis.Redis,
) -> None:
    paused = worker_factory()
    paused.stop()
    backlog = 5000
    for n in range(backlog):
        message = {
            "tenant_id": str(tenant.id),
            "channel": "inapp",
            "recipient_id": f"bulk-{n % 50}",
            "payload": {"body": f"normal {n}"},
        }
        await kafka_producer.send(
            paused.topic("intake"), json.dumps(message).encode(), key=f"bulk-{n % 50}".encode()
        )
    urgent = {
        "tenant_id": str(tenant.id),
        "channel": "inapp",
        "recipient_id": "bulk-0",
        "v": 2,
        "priority": 1,
        "payload": {"body": "urgent"},
    }
    await kafka_producer.send_and_wait(
        paused.topic("intake.priority"), json.dumps(urgent).encode(), key=b"bulk-0"
    )

    resumed = worker_factory(deployment=paused.topic_prefix)
    await eventually(lambda: sunk(redis_client, resumed, body="urgent"), "the urgent one", within=120)
    position = [r["body"] for r in await sunk(redis_client, resumed)].index("urgent")
    assert position < backlog // 2, f"sent after {position} of the {backlog} normal ones"
    resumed.stop()


async def test_table_inspection_answers_from_any_worker(
    worker_factory: Callable[..., Worker], http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    """Two workers share the two partitions; each recipient's state lives on one of them."""
    first = worker_factory()
    second = worker_factory(deployment=first.topic_prefix)
    # Twelve recipients: the chance that all hash to one of the two partitions is 1 in 2,048.
    users = [f"owner-{n}" for n in range(12)]
    for user in users:
        await call(
            http,
            "PUT",
            f"{first.base_url}/api/v1/users/{user}/preferences/sms",
            json={"enabled": False},
            headers=tenant.headers,
        )

    async def both_agree() -> set[str] | None:
        owners = set()
        for user in users:
            answers = []
            for worker in (first, second):
                status, body = await call(
                    http,
                    "GET",
                    f"{worker.base_url}/internal/tables/{tenant.id}/recipients/{user}",
                    headers=worker.admin_headers,
                )
                if status != 200:
                    return None
                answers.append(body["data"])
            if (
                answers[0] != answers[1]
                or answers[0]["preferences"].get("sms", {}).get("enabled") is not False
            ):
                return None
            owners.add(answers[0]["worker"])
        # Until the second worker has joined the group, the first owns every partition.
        return owners if len(owners) == 2 else None

    owners = await eventually(both_agree, "both workers to report each recipient's state", within=60)
    assert owners == {first.base_url, second.base_url}
    first.stop()
    second.stop()


async def test_held_notifications_follow_their_partitions_to_another_worker(
    worker_factory: Callable[..., Worker],
    clock: MovedClock,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    redis_client: redis.Redis,
) -> None:
    """Held on worker A; B joins (a rebalance), then A leaves: B releases all of them, once."""
    first = worker_factory(**clock.worker_settings())
    at = (clock.now() + timedelta(hours=1)).isoformat()
    held = [
        await send_notification(
            http,
            first,
            tenant,
            channel="inapp",
            recipient_id=f"moving-{n}",
            payload={"body": f"moved {n}"},
            scheduled_at=at,
        )
        for n in range(8)  # spread over both partitions
    ]
    for notification in held:
        await wait_for_status(http, first, tenant, notification["id"], "scheduled")

    second = worker_factory(deployment=first.topic_prefix, **clock.worker_settings())
    first.stop()
    clock.advance(timedelta(hours=1, minutes=1))
    for notification in held:
        await wait_for_status(http, second, tenant, notification["id"], "delivered")
    await asyncio.sleep(1.0)
    for notification in held:
        assert len(await sunk(redis_client, second, notification_id=notification["id"])) == 1
    second.stop()
