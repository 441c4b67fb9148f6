"""Enrich on the real stack: templates rendered per channel, preferences applied."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable
from typing import cast

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


async def test_the_seed_readme_example_sends_the_welcome_template(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    """NotifyHub's README example, unchanged: a template *name* and no address (the profile has it)."""
    await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/user-123",
        json={"email": "alice@example.com"},
        headers=tenant.headers,
    )
    accepted = await send_notification(
        http,
        worker,
        tenant,
        recipient_id="user-123",
        channel="email",
        template_id="welcome",
        payload={"name": "Alice"},
    )
    assert (await wait_for_status(http, worker, tenant, accepted["id"]))["status"] == "delivered"
    [record] = await sunk(redis_client, worker, notification_id=accepted["id"])
    assert record["recipient_address"] == "alice@example.com"
    assert "Alice" in record["body"] and "Alice" in (record["subject"] or record["body"])


async def test_html_email_payload_is_escaped_and_sms_is_not(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    for channel, body_template in (("email", "<p>{{ text }}</p>"), ("sms", "{{ text }}")):
        status, _ = await call(
            http,
            "POST",
            f"{worker.base_url}/api/v1/templates",
            json={
                "name": "echo",
                "channel": channel,
                "subject_template": "S",
                "body_template": body_template,
            },
            headers=tenant.headers,
        )
        assert status == 201
    email = await send_notification(
        http,
        worker,
        tenant,
        channel="email",
        recipient_id="r",
        recipient_address="r@example.com",
        template_id="echo",
        payload={"text": "<b>hi</b>"},
    )
    sms = await send_notification(
        http,
        worker,
        tenant,
        channel="sms",
        recipient_id="r",
        recipient_address="+15550100",
        template_id="echo",
        payload={"text": "<b>hi</b>"},
    )
    for accepted, expected in ((email, "<p>&lt;b&gt;hi&lt;/b&gt;</p>"), (sms, "<b>hi</b>")):
        [record] = await eventually(
            functools.partial(sunk, redis_client, worker, notification_id=accepted["id"]), "the send"
        )
        assert record["body"] == expected


async def test_an_undefined_variable_fails_the_notification_with_the_reason(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    accepted = await send_notification(
        http,
        worker,
        tenant,
        channel="sms",
        recipient_id="r",
        recipient_address="+15550100",
        template_id="otp",
        payload={},
    )
    final = await wait_for_status(http, worker, tenant, accepted["id"])
    assert final["status"] == "failed"
    assert "code" in final["status_reason"] and "undefined" in final["status_reason"]
    assert await sunk(redis_client, worker, notification_id=accepted["id"]) == []


async def test_a_template_deleted_after_acceptance_no_longer_renders(
    worker: Worker,
    worker_factory: Callable[..., Worker],
    http: aiohttp.ClientSession,
    tenant: Tenant,
    database: asyncpg.Pool,
    kafka_producer: AIOKafkaProducer,
) -> None:
    """Accepted while its deployment's worker is stopped; the template is deleted; then the
    worker resumes, and the notification fails with the reason instead of rendering."""
    paused = worker_factory()
    paused.stop()
    status, created = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/templates",
        json={"name": "doomed", "channel": "inapp", "body_template": "x"},
        headers=tenant.headers,
    )
    assert status == 201
    message = IntakeMessage(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        channel=Channel.INAPP,
        recipient_id="r",
        template_id=created["data"]["id"],
    )
    await notifications.insert_pending(database, [message])
    await kafka_producer.send_and_wait(paused.topic("intake"), message.to_bytes(), key=b"r")
    status, _ = await call(
        http,
        "DELETE",
        f"{worker.base_url}/api/v1/templates/{created['data']['id']}",
        headers=tenant.headers,
    )
    assert status == 200

    resumed = worker_factory(deployment=paused.topic_prefix)
    final = await wait_for_status(http, worker, tenant, str(message.id))
    resumed.stop()
    assert final["status"] == "failed"
    assert final["status_reason"] == "template_id: no active inapp template has this id or name"


async def test_a_disabled_channel_drops_the_notification_within_a_second_of_the_change(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    user = f"quiet-{uuid.uuid4().hex[:6]}"
    status, _ = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/{user}/preferences/push",
        json={"enabled": False},
        headers=tenant.headers,
    )
    assert status == 200

    await asyncio.sleep(1.0)  # the contract: a change reaches the pipeline within a second
    accepted = await send_notification(
        http,
        worker,
        tenant,
        channel="push",
        recipient_id=user,
        recipient_address="device-1",
        payload={"body": "muted?"},
    )
    final = await wait_for_status(http, worker, tenant, accepted["id"])
    assert final["status"] == "dropped"
    assert final["status_reason"] == "the recipient turned the push channel off"
    assert await sunk(redis_client, worker, notification_id=accepted["id"]) == []

    await call(
        http, "DELETE", f"{worker.base_url}/api/v1/users/{user}/preferences/push", headers=tenant.headers
    )

    async def delivered_again() -> bool:
        accepted = await send_notification(
            http,
            worker,
            tenant,
            channel="push",
            recipient_id=user,
            recipient_address="device-1",
            payload={"body": "back"},
        )
        return cast(
            bool, (await wait_for_status(http, worker, tenant, accepted["id"]))["status"] == "delivered"
        )

    await eventually(
        delivered_again, "pushes to be delivered after the preference is deleted", within=3.0
    )
