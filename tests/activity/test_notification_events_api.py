"""``GET /api/v1/notifications/{id}/events``: one notification's delivery log, oldest first,
for its own tenant only, paged, and as the OpenAPI document describes it."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import aiohttp
import asyncpg
import pytest

from notifyhub.db import tenants
from tests.support.api import FAILING, Tenant, call, send_notification, send_sms, wait_for_status
from tests.support.openapi import Api
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

EVENTS = "/api/v1/notifications/{notification_id}/events"


@pytest.fixture(scope="module")
def inbox_worker(worker_factory: Callable[..., Worker]) -> Worker:
    """A worker whose in-app channel delivers to the inbox (the shared one sinks every channel)."""
    return worker_factory(NOTIFYHUB_SINK_CHANNELS="email,sms,push")


async def test_a_delivered_in_app_notification_shows_each_status_with_its_provider(
    inbox_worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    sent = await send_notification(
        http,
        inbox_worker,
        tenant,
        channel="inapp",
        recipient_id="reader",
        payload={"title": "Welcome", "body": "Glad you are here"},
    )
    await wait_for_status(http, inbox_worker, tenant, sent["id"], "delivered")
    api = Api(http, inbox_worker.base_url, tenant.headers)

    body = await api("GET", EVENTS, 200, {"notification_id": sent["id"]})

    # The log holds what the stages record: stored (queued), then the send's outcome.
    queued, delivered = body["data"]
    assert (queued["status"], queued["provider"]) == ("queued", None)
    assert (delivered["status"], delivered["provider"], delivered["attempt"]) == (
        "delivered",
        "inapp",
        1,
    )
    assert delivered["provider_message_id"]
    assert queued["occurred_at"] <= delivered["occurred_at"]
    assert {entry["notification_id"] for entry in body["data"]} == {sent["id"]}
    assert body["meta"]["total"] == 2


async def test_a_failed_notification_shows_the_reason(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    sent = await send_sms(http, worker, tenant, **FAILING)
    final = await wait_for_status(http, worker, tenant, sent["id"])
    assert final["status"] == "failed"
    api = Api(http, worker.base_url, tenant.headers)

    body = await api("GET", EVENTS, 200, {"notification_id": sent["id"]})

    assert [entry["status"] for entry in body["data"]] == ["queued", "failed"]
    assert body["data"][-1]["reason"] == final["status_reason"]
    assert "undefined" in final["status_reason"]


async def test_pages_of_the_log_keep_its_order(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    sent = await send_sms(http, worker, tenant, payload={"body": "hello"})
    await wait_for_status(http, worker, tenant, sent["id"], "delivered")
    api = Api(http, worker.base_url, tenant.headers)
    pages = [
        await api(
            "GET", EVENTS, 200, {"notification_id": sent["id"]}, params={"per_page": "1", "page": str(n)}
        )
        for n in (1, 2, 3)
    ]
    assert [[entry["status"] for entry in page["data"]] for page in pages] == [
        ["queued"],
        ["delivered"],
        [],
    ]
    assert {(page["meta"]["per_page"], page["meta"]["total"]) for page in pages} == {(1, 2)}


async def test_another_tenants_notification_an_unknown_id_and_a_malformed_one(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    sent = await send_sms(http, worker, tenant, payload={"body": "mine"})
    row = await tenants.create_tenant(database, f"other-{uuid.uuid4().hex[:8]}")
    _, other_key = await tenants.create_api_key(database, row["id"], "other key")
    other = Api(http, worker.base_url, {"X-API-Key": other_key})

    body = await other("GET", EVENTS, 404, {"notification_id": sent["id"]})
    assert body["error"]["code"] == "NOT_FOUND"
    await other("GET", EVENTS, 404, {"notification_id": uuid.uuid4()})
    body = await other("GET", EVENTS, 422, {"notification_id": "nope"})
    assert body["error"]["details"] == {"id": "not a UUID"}
    status, _ = await call(http, "GET", f"{worker.base_url}/api/v1/notifications/{sent['id']}/events")
    assert status == 401
