"""Escalation against the real stack: an in-app message not seen or read in time is
followed by the next channel; seeing or reading it stops the steps that remain; the
activity feed and webhooks report each step."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from notifyhub.cores.escalations import STEP_NAMESPACE
from tests.support.api import Tenant, activity_feed, call, eventually, send_notification, wait_for_status
from tests.support.servers.webhook_receiver import WebhookReceiver
from tests.support.webhooks import post_endpoint
from tests.support.workers import Worker
from tests.support.workflows import reaches, sunk

pytestmark = pytest.mark.stack

# Long enough for a test to read the message first; short enough to keep the suite quick.
WAIT_SECONDS = 3


async def recipient_with_profile(http: aiohttp.ClientSession, worker: Worker, tenant: Tenant) -> str:
    recipient = f"esc-{uuid.uuid4().hex[:8]}"
    status, body = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/{recipient}",
        json={"email": f"{recipient}@example.com", "phone": "+15550101"},
        headers=tenant.headers,
    )
    assert status == 200, body
    return recipient


def escalating(recipient: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel": "inapp",
        "recipient_id": recipient,
        "payload": {"title": "Your order shipped", "body": "It arrives tomorrow."},
        "escalate": list(steps) or [{"after_seconds": WAIT_SECONDS, "channel": "email"}],
    }


def step_id(chain: str, number: int) -> str:
    return str(uuid.uuid5(STEP_NAMESPACE, f"{chain}:{number}"))


async def inbox_message_of(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, recipient: str
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        _, body = await call(
            http,
            "GET",
            f"{worker.base_url}/api/v1/inbox",
            headers={**tenant.headers, "X-Recipient-ID": recipient},
        )
        return body["data"][0] if body["data"] else None

    return await eventually(probe, f"{recipient}'s inbox message")


async def test_an_unseen_message_escalates_to_email_and_webhooks_report_it(
    workflow_worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    redis_client: redis.Redis,
    receiver: WebhookReceiver,
) -> None:
    status, body = await post_endpoint(
        http, workflow_worker, tenant, f"{receiver.url}/escalations", ["notification.escalated"]
    )
    assert status == 201, body
    recipient = await recipient_with_profile(http, workflow_worker, tenant)
    root = await send_notification(http, workflow_worker, tenant, **escalating(recipient))
    assert root["escalate"] == [{"after_seconds": WAIT_SECONDS, "channel": "email", "template_id": None}]
    assert root["digest"] is None
    await wait_for_status(http, workflow_worker, tenant, root["id"], "delivered")
    step = await reaches(http, workflow_worker, tenant, step_id(root["id"], 1), "delivered")
    assert step["channel"] == "email"
    assert step["recipient_address"] == f"{recipient}@example.com"
    [sent] = [
        r
        for r in await sunk(redis_client, workflow_worker, tenant.id)
        if r["notification_id"] == step["id"]
    ]
    # Without a template of its own, the step says what the in-app message said.
    assert (sent["subject"], sent["body"]) == ("Your order shipped", "It arrives tomorrow.")
    entries = await eventually(
        lambda: _with_event(http, workflow_worker, tenant, root["id"], "escalated"),
        "the feed's escalated entry",
    )
    assert step["id"] in entries[-1]["reason"]

    async def reported() -> list[dict[str, Any]]:
        return [
            json.loads(r["body"])
            for r in receiver.requests
            if json.loads(r["body"]).get("notification_id") == root["id"]
        ]

    [hook] = await eventually(reported, "the notification.escalated webhook")
    assert hook["event"] == "notification.escalated"
    assert hook["step_notification_id"] == step["id"]


async def _with_event(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str, event: str
) -> list[dict[str, Any]]:
    return [e for e in await activity_feed(http, worker, tenant, notification_id) if e["event"] == event]


@pytest.mark.parametrize("action", ["read", "seen", "read-all"])
async def test_seeing_or_reading_the_message_first_stops_the_escalation(
    workflow_worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    redis_client: redis.Redis,
    action: str,
) -> None:
    recipient = await recipient_with_profile(http, workflow_worker, tenant)
    root = await send_notification(http, workflow_worker, tenant, **escalating(recipient))
    message = await inbox_message_of(http, workflow_worker, tenant, recipient)
    path = "read-all" if action == "read-all" else f"{message['id']}/{action}"
    status, _ = await call(
        http,
        "POST",
        f"{workflow_worker.base_url}/api/v1/inbox/{path}",
        headers={**tenant.headers, "X-Recipient-ID": recipient},
    )
    assert status == 204
    [stopped] = await eventually(
        lambda: _with_event(http, workflow_worker, tenant, root["id"], "escalation_stopped"),
        "the feed's escalation_stopped entry",
    )
    assert stopped["status"] == "delivered"
    # Past the wait (and a tick): no step was stored or sent.
    await asyncio.sleep(WAIT_SECONDS + 2)
    status, _ = await call(
        http,
        "GET",
        f"{workflow_worker.base_url}/api/v1/notifications/{step_id(root['id'], 1)}",
        headers=tenant.headers,
    )
    assert status == 404
    assert not [
        r for r in await sunk(redis_client, workflow_worker, tenant.id) if r["recipient_id"] == recipient
    ]


async def test_a_chain_goes_on_step_by_step_until_the_message_is_read(
    workflow_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, redis_client: redis.Redis
) -> None:
    recipient = await recipient_with_profile(http, workflow_worker, tenant)
    root = await send_notification(
        http,
        workflow_worker,
        tenant,
        **escalating(
            recipient,
            {"after_seconds": 0, "channel": "sms"},
            {"after_seconds": WAIT_SECONDS, "channel": "email"},
        ),
    )
    texted = await reaches(http, workflow_worker, tenant, step_id(root["id"], 1), "delivered")
    assert texted["channel"] == "sms"
    # Read after the first step: the second (e-mail) is not sent.
    message = await inbox_message_of(http, workflow_worker, tenant, recipient)
    status, _ = await call(
        http,
        "POST",
        f"{workflow_worker.base_url}/api/v1/inbox/{message['id']}/read",
        headers={**tenant.headers, "X-Recipient-ID": recipient},
    )
    assert status == 204
    await eventually(
        lambda: _with_event(http, workflow_worker, tenant, root["id"], "escalation_stopped"),
        "the chain to stop",
    )
    await asyncio.sleep(WAIT_SECONDS + 2)
    channels = [
        r["channel"]
        for r in await sunk(redis_client, workflow_worker, tenant.id)
        if r["recipient_id"] == recipient
    ]
    assert channels == ["sms"]


async def test_a_chain_unread_sends_every_step(
    workflow_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, redis_client: redis.Redis
) -> None:
    recipient = await recipient_with_profile(http, workflow_worker, tenant)
    root = await send_notification(
        http,
        workflow_worker,
        tenant,
        **escalating(
            recipient, {"after_seconds": 0, "channel": "email"}, {"after_seconds": 1, "channel": "sms"}
        ),
    )
    sms = await reaches(http, workflow_worker, tenant, step_id(root["id"], 2), "delivered")
    assert sms["recipient_address"] == "+15550101"
    entries = await eventually(
        lambda: _two(http, workflow_worker, tenant, root["id"]), "both escalated entries on the feed"
    )
    assert [e["event"] for e in entries] == ["escalated", "escalated"]


async def _two(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str
) -> list[dict[str, Any]]:
    entries = await _with_event(http, worker, tenant, notification_id, "escalated")
    return entries if len(entries) == 2 else []


async def test_a_step_without_an_address_stops_the_chain_with_the_reason(
    workflow_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    recipient = f"nobody-{uuid.uuid4().hex[:6]}"  # no profile, so no e-mail address
    root = await send_notification(
        http, workflow_worker, tenant, **escalating(recipient, {"after_seconds": 0, "channel": "email"})
    )
    [stopped] = await eventually(
        lambda: _with_event(http, workflow_worker, tenant, root["id"], "escalation_stopped"),
        "the chain to stop",
    )
    assert "recipient_address" in stopped["reason"]


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ({**escalating("r"), "channel": "email", "recipient_address": "r@example.com"}, "escalate"),
        (escalating("r", {"after_seconds": 1, "channel": "inapp"}), "escalate.0.channel"),
        (escalating("r", {"after_seconds": -1, "channel": "email"}), "escalate.0.after_seconds"),
        (escalating("r", *[{"after_seconds": 1, "channel": "sms"}] * 4), "escalate"),
        ({**escalating("r"), "digest": {"key": "k", "window_seconds": 5}}, "escalate"),
        (
            escalating("r", {"after_seconds": 1, "channel": "email", "template_id": "no-such"}),
            "escalate.0.template_id",
        ),
    ],
)
async def test_a_bad_escalation_is_a_422_naming_the_field(
    workflow_worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    request_body: dict[str, Any],
    field: str,
) -> None:
    status, body = await call(
        http,
        "POST",
        f"{workflow_worker.base_url}/api/v1/notifications",
        json=request_body,
        headers=tenant.headers,
    )
    assert status == 422, body
    assert field in body["error"]["details"], body
