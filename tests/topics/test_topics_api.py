"""Topics over HTTP: create, list, delete, subscribe, unsubscribe, and a send to them."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import aiohttp
import asyncpg
import pytest

from tests.support.api import Tenant, call, eventually, wait_for_status
from tests.support.topics import subscribe_many
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


async def create_topic(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, key: str, name: str = "News"
) -> dict[str, Any]:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/topics",
        json={"key": key, "name": name},
        headers=tenant.headers,
    )
    assert status == 201, body
    return cast(dict[str, Any], body["data"])


async def send_to_topic(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, key: str, **request: object
) -> dict[str, Any]:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/topics/{key}/notifications",
        json=request,
        headers=tenant.headers,
    )
    assert status == 202, body
    return cast(dict[str, Any], body["data"])


async def test_a_topic_is_created_listed_read_and_deleted_by_key(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    url = f"{worker.base_url}/api/v1/topics"
    created = await create_topic(http, worker, tenant, "releases", "Product releases")
    assert created["key"] == "releases"
    assert created["subscriber_count"] == 0
    await create_topic(http, worker, tenant, "outages")

    status, body = await call(
        http, "POST", url, json={"key": "releases", "name": "x"}, headers=tenant.headers
    )
    assert status == 409, body
    status, body = await call(
        http, "POST", url, json={"key": "no spaces", "name": "x"}, headers=tenant.headers
    )
    assert status == 422
    assert "key" in body["error"]["details"]

    status, body = await call(http, "GET", f"{url}?per_page=1&page=2", headers=tenant.headers)
    assert status == 200
    assert [t["key"] for t in body["data"]] == ["outages"]
    assert body["meta"]["total"] == 2

    status, body = await call(http, "DELETE", f"{url}/releases", headers=tenant.headers)
    assert (status, body["data"]["name"]) == (200, "Product releases")
    status, _ = await call(http, "GET", f"{url}/releases", headers=tenant.headers)
    assert status == 404
    status, _ = await call(http, "DELETE", f"{url}/releases", headers=tenant.headers)
    assert status == 404


async def test_recipients_subscribe_and_unsubscribe_one_or_many(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    await create_topic(http, worker, tenant, "digest")
    url = f"{worker.base_url}/api/v1/topics/digest/subscribers"

    status, body = await call(http, "POST", url, json={"recipient_ids": ["ada"]}, headers=tenant.headers)
    assert (status, body["data"]["subscriber_count"]) == (200, 1)
    many = {"recipient_ids": ["ada", "bob", "cy", "dee"]}
    status, body = await call(http, "POST", url, json=many, headers=tenant.headers)
    assert body["data"]["subscriber_count"] == 4  # ada once

    status, body = await call(
        http, "DELETE", url, json={"recipient_ids": ["bob", "zed"]}, headers=tenant.headers
    )
    assert (status, body["data"]["subscriber_count"]) == (200, 3)

    status, body = await call(http, "GET", f"{url}?per_page=2", headers=tenant.headers)
    assert status == 200
    assert [s["recipient_id"] for s in body["data"]] == ["ada", "cy"]
    assert body["meta"]["total"] == 3

    too_many = {"recipient_ids": [f"r{n}" for n in range(1001)]}
    status, body = await call(http, "POST", url, json=too_many, headers=tenant.headers)
    assert status == 422
    status, _ = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/topics/nope/subscribers",
        json={"recipient_ids": ["ada"]},
        headers=tenant.headers,
    )
    assert status == 404


async def test_a_tenant_sees_and_changes_only_its_own_topics(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    from notifyhub.db import tenants

    row = await tenants.create_tenant(database, f"other-{uuid.uuid4().hex[:8]}")
    _, raw_key = await tenants.create_api_key(database, row["id"], "other key")
    other = Tenant(row["id"], raw_key)
    await create_topic(http, worker, tenant, "shared-key")
    await create_topic(http, worker, other, "shared-key", "Theirs")
    base = f"{worker.base_url}/api/v1/topics"
    await call(
        http,
        "POST",
        f"{base}/shared-key/subscribers",
        json={"recipient_ids": ["ada"]},
        headers=tenant.headers,
    )

    status, body = await call(http, "GET", f"{base}/shared-key/subscribers", headers=other.headers)
    assert (status, body["data"]) == (200, [])
    status, body = await call(http, "GET", base, headers=other.headers)
    assert [t["name"] for t in body["data"]] == ["Theirs"]
    await create_topic(http, worker, tenant, "mine-only")
    for method, path, kwargs in (
        ("GET", "/mine-only", {}),
        ("DELETE", "/mine-only", {}),
        ("GET", "/mine-only/subscribers", {}),
        ("POST", "/mine-only/subscribers", {"json": {"recipient_ids": ["x"]}}),
        ("DELETE", "/mine-only/subscribers", {"json": {"recipient_ids": ["x"]}}),
        ("POST", "/mine-only/notifications", {"json": {"channel": "inapp", "payload": {"body": "x"}}}),
    ):
        status, _ = await call(http, method, base + path, headers=other.headers, **kwargs)
        assert status == 404, (method, path)

    sent = await send_to_topic(http, worker, other, "shared-key", channel="inapp", payload={"body": "x"})
    assert sent["subscriber_count"] == 0
    status, _ = await call(http, "GET", f"{base}/shared-key/sends/{sent['id']}", headers=tenant.headers)
    assert status == 404


async def test_a_send_reaches_each_subscriber_and_one_who_turned_the_channel_off_is_dropped(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    await create_topic(http, worker, tenant, "alerts")
    await subscribe_many(http, worker, tenant, "alerts", ["ada", "bob", "muted"])
    status, _ = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/muted/preferences/inapp",
        json={"enabled": False},
        headers=tenant.headers,
    )
    assert status == 200
    await asyncio.sleep(1.0)  # the contract: a change reaches the pipeline within a second

    sent = await send_to_topic(
        http, worker, tenant, "alerts", channel="inapp", payload={"title": "Hi", "body": "Hello"}
    )
    assert (sent["subscriber_count"], sent["status"]) == (3, "fanning_out")
    rows = await eventually(
        lambda: _final_notifications(database, tenant, sent["id"], expected=3), "3 final notifications"
    )
    assert {r["recipient_id"]: r["status"] for r in rows} == {
        "ada": "delivered",
        "bob": "delivered",
        "muted": "dropped",
    }
    dropped = await wait_for_status(
        http, worker, tenant, str(next(r["id"] for r in rows if r["recipient_id"] == "muted"))
    )
    assert dropped["status_reason"] == "the recipient turned the inapp channel off"

    status, body = await call(
        http, "GET", f"{worker.base_url}/api/v1/topics/alerts/sends/{sent['id']}", headers=tenant.headers
    )
    assert status == 200
    assert (body["data"]["status"], body["data"]["stored"], body["data"]["skipped"]) == ("done", 3, 0)


async def test_an_email_send_uses_each_profile_address_and_skips_who_has_none(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    await create_topic(http, worker, tenant, "letters")
    await subscribe_many(http, worker, tenant, "letters", ["ada", "nobody"])
    status, _ = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/ada",
        json={"email": "ada@example.com"},
        headers=tenant.headers,
    )
    assert status == 200

    sent = await send_to_topic(
        http, worker, tenant, "letters", channel="email", payload={"subject": "Hi", "body": "Hello"}
    )
    rows = await eventually(
        lambda: _final_notifications(database, tenant, sent["id"], expected=1), "the e-mail delivered"
    )
    assert [(r["recipient_id"], r["recipient_address"], r["status"]) for r in rows] == [
        ("ada", "ada@example.com", "delivered")
    ]
    _, body = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/topics/letters/sends/{sent['id']}",
        headers=tenant.headers,
    )
    assert (body["data"]["stored"], body["data"]["skipped"]) == (1, 1)


async def test_a_send_without_a_body_or_with_an_unknown_template_is_refused(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    await create_topic(http, worker, tenant, "checked")
    url = f"{worker.base_url}/api/v1/topics/checked/notifications"
    status, body = await call(http, "POST", url, json={"channel": "inapp"}, headers=tenant.headers)
    assert (status, list(body["error"]["details"])) == (422, ["payload.body"])
    status, body = await call(
        http, "POST", url, json={"channel": "inapp", "template_id": "missing"}, headers=tenant.headers
    )
    assert (status, list(body["error"]["details"])) == (422, ["template_id"])


async def _final_notifications(
    database: asyncpg.Pool, tenant: Tenant, send_id: str, expected: int
) -> list[asyncpg.Record] | None:
    rows = await database.fetch(
        """SELECT id, recipient_id, recipient_address, status FROM notifications
            WHERE tenant_id = $1 AND payload->>'topic_send_id' = $2
              AND status IN ('delivered', 'dropped', 'failed')
            ORDER BY recipient_id""",
        tenant.id,
        send_id,
    )
    return rows if len(rows) == expected else None
