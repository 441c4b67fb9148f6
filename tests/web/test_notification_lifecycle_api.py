"""Bulk sends, listing, idempotency under concurrency, and cancel that really stops delivery."""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import Callable
from typing import cast

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from notifyhub.db import notifications, tenants
from notifyhub.model.channels import Channel
from notifyhub.model.messages import IntakeMessage
from tests.support.api import Tenant, call, eventually
from tests.support.sink import sunk
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


async def test_bulk_accepts_each_valid_recipient_and_reports_the_others(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    marker = uuid.uuid4().hex[:8]
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/notifications/bulk",
        json={
            "channel": "sms",
            "payload": {"body": "base", "campaign": "spring"},
            "recipients": [
                {"recipient_id": f"a-{marker}", "recipient_address": "+15550001"},
                {"recipient_id": f"b-{marker}"},
                {
                    "recipient_id": f"c-{marker}",
                    "recipient_address": "+15550003",
                    "payload": {"body": "just for c"},
                },
            ],
        },
        headers=tenant.headers,
    )
    assert status == 202
    accepted = body["data"]["accepted"]
    assert [n["recipient_id"] for n in accepted] == [f"a-{marker}", f"c-{marker}"]
    assert accepted[1]["payload"] == {"body": "just for c", "campaign": "spring"}
    [error] = body["data"]["errors"]
    assert error.startswith(f"recipient b-{marker}: recipient_address")

    for notification in accepted:
        [record] = await eventually(
            functools.partial(sunk, redis_client, worker, notification_id=notification["id"]),
            f"bulk notification {notification['recipient_id']} to be sent",
        )
    assert record["body"] == "just for c"


@pytest.mark.parametrize("count", [0, 1001])
async def test_bulk_needs_one_to_a_thousand_recipients(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, count: int
) -> None:
    recipients = [{"recipient_id": f"r{i}"} for i in range(count)]
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/notifications/bulk",
        json={"channel": "inapp", "payload": {"body": "x"}, "recipients": recipients},
        headers=tenant.headers,
    )
    assert status == 422 and "recipients" in body["error"]["details"]


async def test_list_filters_and_pages(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    url = f"{worker.base_url}/api/v1/notifications"
    for recipient, channel in (("x", "inapp"), ("x", "push"), ("y", "inapp")):
        await call(
            http,
            "POST",
            url,
            json={"channel": channel, "recipient_id": recipient, "payload": {"body": "b"}},
            headers=tenant.headers,
        )
    status, body = await call(
        http, "GET", f"{url}?recipient_id=x&per_page=1&page=2", headers=tenant.headers
    )
    assert status == 200
    assert body["meta"] == {**body["meta"], "page": 2, "per_page": 1, "total": 2}
    assert [n["channel"] for n in body["data"]] == ["inapp"]  # newest first: push, then inapp

    _, body = await call(http, "GET", f"{url}?channel=inapp", headers=tenant.headers)
    assert sorted(n["recipient_id"] for n in body["data"]) == ["x", "y"]
    _, body = await call(http, "GET", f"{url}?per_page=1000", headers=tenant.headers)
    assert body["meta"]["per_page"] == 100

    for query, field in (("status=lost", "status"), ("channel=fax", "channel"), ("page=100001", "page")):
        status, body = await call(http, "GET", f"{url}?{query}", headers=tenant.headers)
        assert status == 422 and field in body["error"]["details"], query


async def test_twenty_concurrent_requests_with_one_key_make_one_notification_and_one_send(
    worker: Worker,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    database: asyncpg.Pool,
    redis_client: redis.Redis,
) -> None:
    key = f"order-{uuid.uuid4()}"
    request = {
        "channel": "push",
        "recipient_id": "racer",
        "recipient_address": "device-1",
        "payload": {"body": "once"},
        "idempotency_key": key,
    }
    answers = await asyncio.gather(
        *(
            call(
                http,
                "POST",
                f"{worker.base_url}/api/v1/notifications",
                json=request,
                headers=tenant.headers,
            )
            for _ in range(20)
        )
    )
    assert {status for status, _ in answers} == {202}
    ids = {body["data"]["id"] for _, body in answers}
    assert len(ids) == 1
    [notification_id] = ids
    await eventually(
        lambda: sunk(redis_client, worker, notification_id=notification_id),
        "the notification to be sent",
    )
    await asyncio.sleep(0.5)  # room for a duplicate send to show up, were there one
    assert len(await sunk(redis_client, worker, notification_id=notification_id)) == 1
    assert (
        await database.fetchval(
            "SELECT count(*) FROM notifications WHERE tenant_id = $1 AND idempotency_key = $2",
            tenant.id,
            key,
        )
        == 1
    )


async def test_one_idempotency_key_in_two_tenants_is_two_notifications(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    other = await tenants.create_tenant(database, "other")
    _, other_key = await tenants.create_api_key(database, other["id"], "k")
    request = {
        "channel": "inapp",
        "recipient_id": "u",
        "payload": {"body": "b"},
        "idempotency_key": "shared-key",
    }
    ids = set()
    for headers in (tenant.headers, {"X-API-Key": other_key}):
        status, body = await call(
            http, "POST", f"{worker.base_url}/api/v1/notifications", json=request, headers=headers
        )
        assert status == 202
        ids.add(body["data"]["id"])
    assert len(ids) == 2


async def test_a_delivered_notification_cannot_be_cancelled(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    _, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/notifications",
        json={"channel": "inapp", "recipient_id": "u", "payload": {"body": "b"}},
        headers=tenant.headers,
    )
    url = f"{worker.base_url}/api/v1/notifications/{body['data']['id']}"

    async def delivered() -> bool:
        return cast(
            bool,
            (await call(http, "GET", url, headers=tenant.headers))[1]["data"]["status"] == "delivered",
        )

    await eventually(delivered, "delivery")
    status, body = await call(http, "DELETE", url, headers=tenant.headers)
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"


async def test_cancel_stops_a_notification_already_in_a_topic(
    worker: Worker,
    worker_factory: Callable[..., Worker],
    http: aiohttp.ClientSession,
    tenant: Tenant,
    database: asyncpg.Pool,
    kafka_producer: AIOKafkaProducer,
    redis_client: redis.Redis,
) -> None:
    """The notification waits in the intake topic of a deployment whose worker is stopped;
    it is cancelled through the API, then that worker comes back and must not send it."""
    paused = worker_factory()
    paused.stop()
    recipient = f"cancel-{uuid.uuid4().hex[:6]}"

    async def enqueue(body: str) -> uuid.UUID:
        message = IntakeMessage(
            id=uuid.uuid4(),
            tenant_id=tenant.id,
            channel=Channel.INAPP,
            recipient_id=recipient,
            payload={"body": body},
        )
        await notifications.insert_pending(database, [message])
        await kafka_producer.send_and_wait(
            paused.topic("intake"), message.to_bytes(), key=recipient.encode()
        )
        return cast(uuid.UUID, message.id)

    doomed = await enqueue("cancel me")
    survivor = await enqueue("send me")  # same key, same partition: processed after `doomed`
    status, body = await call(
        http, "DELETE", f"{worker.base_url}/api/v1/notifications/{doomed}", headers=tenant.headers
    )
    assert status == 200 and body["data"]["status"] == "cancelled"

    resumed = worker_factory(deployment=paused.topic_prefix)
    await eventually(
        lambda: sunk(redis_client, resumed, notification_id=str(survivor)),
        "the notification behind the cancelled one to be sent",
    )
    assert await sunk(redis_client, resumed, notification_id=str(doomed)) == []
    assert await database.fetchval("SELECT status FROM notifications WHERE id = $1", doomed) == (
        "cancelled"
    )
    resumed.stop()


async def test_cancel_of_an_unknown_or_foreign_notification_is_a_404(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    status, body = await call(
        http, "DELETE", f"{worker.base_url}/api/v1/notifications/{uuid.uuid4()}", headers=tenant.headers
    )
    assert status == 404
    assert json.dumps(body["error"]["message"]) == '"notification not found or not cancellable"'
