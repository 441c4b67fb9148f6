"""Outbound webhooks end to end: endpoint CRUD, signed deliveries a receiver verifies,
retries after 500s, the DLQ after the last attempt and its replay, and SSRF refusal."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable

import aiohttp
import asyncpg
import pytest

from notifyhub.webhooks import endpoint_secrets
from tests.conftest import Tenant, Worker, call, eventually, send_notification, wait_for_status
from tests.servers.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.stack

SECRET = "whsec-test-0123456789abcdef"
MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
def hooked(worker_factory: Callable[..., Worker]) -> Worker:
    """A worker allowed to call the loopback receiver, retrying quickly."""
    return worker_factory(
        NOTIFYHUB_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
        NOTIFYHUB_WEBHOOK_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        NOTIFYHUB_WEBHOOK_RETRY_BASE_SECONDS="0.2",
        NOTIFYHUB_WEBHOOK_RETRY_MAX_SECONDS="1",
    )


async def endpoint(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, url: str, events: list[str]
) -> dict:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/webhooks",
        json={"url": url, "secret": SECRET, "events": events},
        headers=tenant.headers,
    )
    assert status == 201, body
    return body["data"]


def for_notification(receiver: WebhookReceiver, notification_id: str) -> list[dict]:
    return [
        r for r in receiver.requests if json.loads(r["body"]).get("notification_id") == notification_id
    ]


async def received(receiver: WebhookReceiver, notification_id: str) -> list[dict]:
    """``for_notification`` as a probe for ``eventually``."""
    return for_notification(receiver, notification_id)


async def test_endpoint_crud_keeps_the_secret_encrypted_and_never_returns_it(
    hooked: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    created = await endpoint(http, hooked, tenant, "http://127.0.0.1:9/hook", ["notification.failed"])
    assert "secret" not in created and "secret_ciphertext" not in created
    stored = await database.fetchval(
        "SELECT secret_ciphertext FROM webhook_endpoints WHERE id = $1", uuid.UUID(created["id"])
    )
    assert SECRET.encode() not in stored
    assert endpoint_secrets.decrypt("dev-webhook-secret-key-change-me", stored) == SECRET

    url = f"{hooked.base_url}/api/v1/webhooks/{created['id']}"
    status, body = await call(
        http,
        "PUT",
        url,
        json={"events": ["notification.delivered"], "is_active": False},
        headers=tenant.headers,
    )
    assert status == 200
    assert (body["data"]["events"], body["data"]["is_active"]) == (["notification.delivered"], False)
    _, body = await call(http, "GET", f"{hooked.base_url}/api/v1/webhooks", headers=tenant.headers)
    assert [e["id"] for e in body["data"]] == [created["id"]]
    assert (await call(http, "DELETE", url, headers=tenant.headers))[0] == 204
    assert (await call(http, "GET", url, headers=tenant.headers))[0] == 404


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        (
            {"url": "http://example.com/h", "secret": "short", "events": ["notification.failed"]},
            "secret",
        ),
        (
            {"url": "http://example.com/h", "secret": SECRET, "events": ["notification.exploded"]},
            "events.0",
        ),
        ({"url": "http://example.com/h", "secret": SECRET, "events": []}, "events"),
        ({"url": "ftp://example.com/hook", "secret": SECRET, "events": ["notification.failed"]}, "url"),
    ],
)
async def test_invalid_endpoints_are_a_422_naming_the_field(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, request_body: dict, field: str
) -> None:
    status, body = await call(
        http, "POST", f"{worker.base_url}/api/v1/webhooks", json=request_body, headers=tenant.headers
    )
    assert status == 422, body
    assert field in body["error"]["details"], body


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/hook",
        "http://[::1]/hook",
    ],
)
async def test_private_addresses_are_refused_by_default(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, url: str
) -> None:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/webhooks",
        json={"url": url, "secret": SECRET, "events": ["notification.delivered"]},
        headers=tenant.headers,
    )
    assert status == 422, body
    assert "private or reserved" in body["error"]["details"]["url"]


async def test_a_delivered_notification_is_announced_signed_with_its_status(
    hooked: Worker, tenant: Tenant, http: aiohttp.ClientSession, receiver: WebhookReceiver
) -> None:
    await endpoint(http, hooked, tenant, f"{receiver.url}/signed", ["notification.delivered"])
    sent = await send_notification(
        http, hooked, tenant, channel="inapp", recipient_id="hooked", payload={"body": "hi"}
    )
    [delivery] = await eventually(lambda: received(receiver, sent["id"]), "the webhook")
    headers, body = delivery["headers"], delivery["body"]
    payload = json.loads(body)
    assert payload["event"] == headers["X-NotifyHub-Event"] == "notification.delivered"
    assert (payload["status"], payload["tenant_id"], payload["channel"]) == (
        "delivered",
        str(tenant.id),
        "inapp",
    )
    # NotifyHub's signature.
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-NotifyHub-Signature"], f"sha256={expected}")
    # Standard Webhooks': id, timestamp and body signed together.
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    standard = base64.b64encode(hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{standard}"
    assert headers["webhook-id"] == headers["X-NotifyHub-Delivery-ID"]


async def test_failed_deliveries_are_retried_and_logged_then_dead_lettered_and_replayable(
    hooked: Worker, tenant: Tenant, http: aiohttp.ClientSession, receiver: WebhookReceiver
) -> None:
    hook = await endpoint(http, hooked, tenant, f"{receiver.url}/flaky", ["notification.delivered"])
    receiver.fail_next(2)
    sent = await send_notification(
        http, hooked, tenant, channel="inapp", recipient_id="r1", payload={"body": "a"}
    )

    async def answered_ok() -> list[dict]:
        return [r for r in for_notification(receiver, sent["id"]) if r["answered"] == 200]

    await eventually(answered_ok, "the third attempt to succeed")
    assert [r["answered"] for r in for_notification(receiver, sent["id"])] == [500, 500, 200]
    ids = {r["headers"]["webhook-id"] for r in for_notification(receiver, sent["id"])}
    assert len(ids) == 1, "every attempt is the same delivery"

    async def logged() -> list[dict]:
        _, body = await call(
            http,
            "GET",
            f"{hooked.base_url}/api/v1/webhooks/{hook['id']}/deliveries",
            headers=tenant.headers,
        )
        return body["data"] if len(body["data"]) >= 3 else []

    log = await eventually(logged, "three attempts in the delivery log")
    assert sorted((a["attempt"], a["succeeded"], a["status_code"]) for a in log) == [
        (1, False, 500),
        (2, False, 500),
        (3, True, 200),
    ]

    receiver.fail_next(MAX_ATTEMPTS)
    doomed = await send_notification(
        http, hooked, tenant, channel="inapp", recipient_id="r2", payload={"body": "b"}
    )
    await wait_for_status(http, hooked, tenant, doomed["id"], "delivered")
    admin = {**hooked.admin_headers, "X-Tenant-ID": str(tenant.id)}

    async def letters() -> list[dict]:
        _, body = await call(http, "GET", f"{hooked.base_url}/internal/dlq", headers=admin)
        return [d for d in body["data"] if d["source_topic"] == hooked.topic("webhooks.outbound")]

    [letter] = await eventually(letters, "the webhook's dead letter")
    assert letter["attempts"] == MAX_ATTEMPTS
    assert "HTTP 500" in letter["reason"]
    assert [r["answered"] for r in for_notification(receiver, doomed["id"])] == [500] * MAX_ATTEMPTS
    status, _ = await call(
        http, "POST", f"{hooked.base_url}/internal/dlq/{letter['id']}/replay", headers=admin
    )
    assert status == 200

    async def replayed() -> list[dict]:
        return [r for r in for_notification(receiver, doomed["id"]) if r["answered"] == 200]

    await eventually(replayed, "the replayed webhook to be delivered")
