"""Outbound webhooks end to end: endpoint CRUD, signed deliveries a receiver verifies,
retries after 500s, the DLQ after the last attempt and its replay, and SSRF refusal."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer

from notifyhub.model.messages import WebhookDelivery
from notifyhub.webhooks import endpoint_secrets
from tests.support.api import Tenant, call, eventually, send_notification, wait_for_status
from tests.support.servers import serve
from tests.support.servers.webhook_receiver import WebhookReceiver
from tests.support.webhooks import SECRET, post_endpoint, store_endpoints
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

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
) -> dict[str, Any]:
    status, body = await post_endpoint(http, worker, tenant, url, events)
    assert status == 201, body
    return cast(dict[str, Any], body["data"])


def for_notification(receiver: WebhookReceiver, notification_id: str) -> list[dict[str, Any]]:
    return [
        r for r in receiver.requests if json.loads(r["body"]).get("notification_id") == notification_id
    ]


async def received(receiver: WebhookReceiver, notification_id: str) -> list[dict[str, Any]]:
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
    assert endpoint_secrets.decrypt(hooked.env["NOTIFYHUB_WEBHOOK_SECRET_KEY"], stored) == SECRET

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
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, request_body: dict[str, Any], field: str
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
        "http://100.64.0.1/hook",
        "http://[2002:a9fe:a9fe::]/latest/meta-data",
    ],
)
async def test_private_addresses_are_refused_by_default(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, url: str
) -> None:
    status, body = await post_endpoint(http, worker, tenant, url, ["notification.delivered"])
    assert status == 422, body
    assert body["error"]["details"] == {"url": "refused: not a public address"}


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

    async def answered_ok() -> list[dict[str, Any]]:
        return [r for r in for_notification(receiver, sent["id"]) if r["answered"] == 200]

    await eventually(answered_ok, "the third attempt to succeed")
    assert [r["answered"] for r in for_notification(receiver, sent["id"])] == [500, 500, 200]
    ids = {r["headers"]["webhook-id"] for r in for_notification(receiver, sent["id"])}
    assert len(ids) == 1, "every attempt is the same delivery"

    async def logged() -> list[dict[str, Any]]:
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

    async def letters() -> list[dict[str, Any]]:
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

    async def replayed() -> list[dict[str, Any]]:
        return [r for r in for_notification(receiver, doomed["id"]) if r["answered"] == 200]

    await eventually(replayed, "the replayed webhook to be delivered")


# A receiver that never stops answering: ~640 MB unless the client hangs up first.
ENDLESS_CHUNKS = 10_000
ENDLESS_CHUNK = b"x" * 65536


async def _endless_answer(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(status=500)
    response.content_type = "text/plain"
    response.charset = "utf-8"
    await response.prepare(request)
    await response.write(b"\xff\xfe not UTF-8 ")
    for _ in range(ENDLESS_CHUNKS):
        await response.write(ENDLESS_CHUNK)
    return response


@pytest.fixture
async def endless_receiver() -> AsyncIterator[str]:
    """The URL of a receiver that answers 500 with an endless body."""
    application = web.Application()
    application.router.add_post("/{path:.*}", _endless_answer)
    runner, url = await serve(application)
    try:
        yield url
    finally:
        await runner.cleanup()


async def deliveries_of(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, endpoint_id: str
) -> list[dict[str, Any]]:
    _, body = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/webhooks/{endpoint_id}/deliveries",
        headers=tenant.headers,
    )
    return cast(list[dict[str, Any]], body["data"])


async def deliver(producer: AIOKafkaProducer, worker: Worker, tenant: Tenant, endpoint_id: str) -> None:
    """One delivery for the endpoint, as fan-out would hand it to the delivery agent."""
    delivery = WebhookDelivery(
        delivery_id=uuid.uuid4(),
        endpoint_id=uuid.UUID(endpoint_id),
        tenant_id=tenant.id,
        event="notification.delivered",
        body=json.dumps({"event": "notification.delivered"}),
    )
    await producer.send_and_wait(
        worker.topic("webhooks.outbound"), delivery.to_bytes(), key=delivery.endpoint_key
    )


async def test_only_the_start_of_an_answer_is_read(
    hooked: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    kafka_producer: AIOKafkaProducer,
    endless_receiver: str,
) -> None:
    hook = await endpoint(http, hooked, tenant, f"{endless_receiver}/hook", ["notification.delivered"])
    await deliver(kafka_producer, hooked, tenant, hook["id"])
    [first, *_] = await eventually(
        lambda: deliveries_of(http, hooked, tenant, hook["id"]), "the first attempt logged"
    )
    assert first["status_code"] == 500
    # Undecodable bytes replaced; an excerpt kept, not the body (nor a timeout reading it).
    assert first["error"].startswith("HTTP 500: \ufffd\ufffd not UTF-8 xxx"), first["error"]
    assert len(first["error"]) == len("HTTP 500: ") + 200
    assert first["duration_ms"] < 5000


async def test_a_stored_url_that_leads_to_a_private_address_is_refused_at_connection(
    worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    database: asyncpg.Pool,
    kafka_producer: AIOKafkaProducer,
    receiver: WebhookReceiver,
) -> None:
    """As if the name had been re-pointed after the endpoint was saved: stored directly."""
    port = receiver.url.rsplit(":", 1)[1]
    secret = endpoint_secrets.encrypt(worker.env["NOTIFYHUB_WEBHOOK_SECRET_KEY"], SECRET)
    urls = [f"http://localhost:{port}/rebound", f"http://127.0.0.1:{port}/literal"]
    ids = await store_endpoints(database, tenant, urls, secret, ["notification.delivered"])
    received_before = len(receiver.requests)
    for endpoint_id in ids:
        await deliver(kafka_producer, worker, tenant, str(endpoint_id))
    for endpoint_id in ids:
        [attempt] = await eventually(
            functools.partial(deliveries_of, http, worker, tenant, str(endpoint_id)),
            "the refused attempt logged",
        )
        # Refused for good (no retry), without saying what the name resolved to.
        assert (attempt["succeeded"], attempt["status_code"]) == (False, None)
        assert attempt["error"] == "refused: not a public address"
    assert len(receiver.requests) == received_before
