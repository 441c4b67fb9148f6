"""The inbox REST API: listing with filters and a keyset cursor, counts, and the read,
seen and archived states, per tenant and recipient."""

from __future__ import annotations

import uuid
from typing import Any, cast

import aiohttp
import asyncpg
import pytest

from notifyhub.db import inbox
from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from tests.support.api import Tenant, call
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


async def delivered(database: asyncpg.Pool, tenant: Tenant, recipient: str, count: int) -> list[str]:
    """Store ``count`` inbox messages as the in-app provider does; their ids, oldest first."""
    ids = []
    for n in range(count):
        notification = Notification(
            id=uuid.uuid4(),
            tenant_id=tenant.id,
            channel=Channel.INAPP,
            recipient_id=recipient,
            subject=f"title {n}",
            body=f"body {n}",
            payload={"n": n},
        )
        message, _ = await inbox.store_message(database, notification)
        ids.append(str(message["id"]))
    return ids


def headers(tenant: Tenant, recipient: str) -> dict[str, str]:
    return {**tenant.headers, "X-Recipient-ID": recipient}


async def test_the_inbox_lists_newest_first_and_pages_with_a_cursor(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    ids = await delivered(database, tenant, "reader", 5)
    url = f"{worker.base_url}/api/v1/inbox"
    status, body = await call(http, "GET", url, params={"limit": "2"}, headers=headers(tenant, "reader"))
    assert status == 200
    assert [m["id"] for m in body["data"]] == [ids[4], ids[3]]
    first = body["data"][0]
    assert (first["title"], first["body"], first["payload"]) == ("title 4", "body 4", {"n": 4})
    assert first["read_at"] is None and first["recipient_id"] == "reader"
    _, body = await call(
        http, "GET", url, params={"limit": "2", "after_id": ids[3]}, headers=headers(tenant, "reader")
    )
    assert [m["id"] for m in body["data"]] == [ids[2], ids[1]]
    _, body = await call(http, "GET", url, params={"offset": "4"}, headers=headers(tenant, "reader"))
    assert [m["id"] for m in body["data"]] == [ids[0]]
    # Another recipient of the tenant, and the same recipient in another tenant, see nothing.
    _, body = await call(http, "GET", url, headers=headers(tenant, "someone-else"))
    assert body["data"] == []


async def test_read_seen_and_archived_states_and_their_counts(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    ids = await delivered(database, tenant, "marker", 4)
    base = f"{worker.base_url}/api/v1/inbox"
    mine = headers(tenant, "marker")

    async def counts() -> dict[str, Any]:
        _, body = await call(http, "GET", f"{base}/counts", headers=mine)
        return cast(dict[str, Any], body["data"])

    assert await counts() == {"unread": 4, "unseen": 4, "archived": 0, "total": 4}
    assert (await call(http, "POST", f"{base}/{ids[0]}/read", headers=mine))[0] == 204
    assert (await call(http, "POST", f"{base}/{ids[1]}/seen", headers=mine))[0] == 204
    assert (await call(http, "POST", f"{base}/{ids[2]}/archive", headers=mine))[0] == 204
    assert await counts() == {"unread": 2, "unseen": 2, "archived": 1, "total": 4}
    _, body = await call(http, "GET", f"{base}/unread-count", headers=mine)
    assert body["data"] == {"unread": 2}

    _, body = await call(http, "GET", base, params={"unread": "true"}, headers=mine)
    assert sorted(m["id"] for m in body["data"]) == sorted([ids[1], ids[3]])
    _, body = await call(http, "GET", base, params={"archived": "true"}, headers=mine)
    assert [m["id"] for m in body["data"]] == [ids[2]]
    _, body = await call(http, "GET", base, params={"archived": "all"}, headers=mine)
    assert len(body["data"]) == 4

    assert (await call(http, "POST", f"{base}/{ids[0]}/unread", headers=mine))[0] == 204
    assert (await call(http, "POST", f"{base}/{ids[2]}/unarchive", headers=mine))[0] == 204
    assert (await call(http, "POST", f"{base}/read-all", headers=mine))[0] == 204
    assert (await call(http, "POST", f"{base}/seen-all", headers=mine))[0] == 204
    assert await counts() == {"unread": 0, "unseen": 0, "archived": 0, "total": 4}


async def test_marking_a_message_of_someone_else_is_a_404(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    [message] = await delivered(database, tenant, "owner", 1)
    base = f"{worker.base_url}/api/v1/inbox"
    status, _ = await call(http, "POST", f"{base}/{message}/read", headers=headers(tenant, "intruder"))
    assert status == 404
    status, _ = await call(http, "POST", f"{base}/{uuid.uuid4()}/read", headers=headers(tenant, "owner"))
    assert status == 404
    status, _ = await call(http, "POST", f"{base}/{message}/explode", headers=headers(tenant, "owner"))
    assert status == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"offset": "-1"}, "offset"),
        ({"unread": "maybe"}, "unread"),
        ({"after_id": "nope"}, "after_id"),
        ({"after_id": str(uuid.uuid4())}, "after_id"),
    ],
)
async def test_bad_queries_and_a_missing_recipient_are_a_422_naming_the_field(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, params: dict[str, Any], field: str
) -> None:
    url = f"{worker.base_url}/api/v1/inbox"
    status, body = await call(http, "GET", url, params=params, headers=headers(tenant, "r"))
    assert status == 422 and field in body["error"]["details"]
    status, body = await call(http, "GET", url, headers=tenant.headers)
    assert status == 422 and "X-Recipient-ID" in body["error"]["details"]


@pytest.mark.parametrize("limit", ["0", "-3", "201", "many"])
async def test_a_limit_out_of_range_is_the_default_as_in_notifyhub(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool, limit: str
) -> None:
    await delivered(database, tenant, "ranged", 3)
    url = f"{worker.base_url}/api/v1/inbox"
    status, body = await call(
        http, "GET", url, params={"limit": limit}, headers=headers(tenant, "ranged")
    )
    assert status == 200, body
    assert body["meta"]["limit"] == 50 and len(body["data"]) == 3


async def test_a_browser_reads_its_own_inbox_with_its_token_from_any_origin(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    [message] = await delivered(database, tenant, "browser", 1)
    _, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/ws-token",
        json={"recipient_id": "browser"},
        headers=tenant.headers,
    )
    bearer = {"Authorization": f"Bearer {body['data']['token']}", "Origin": "https://tenant.example"}
    async with http.options(f"{worker.base_url}/api/v1/inbox", headers=bearer) as preflight:
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "*"
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    status, body = await call(http, "GET", f"{worker.base_url}/api/v1/inbox", headers=bearer)
    assert status == 200
    assert [m["id"] for m in body["data"]] == [message]
    status, _ = await call(
        http, "GET", f"{worker.base_url}/api/v1/inbox", headers={"Authorization": "Bearer forged"}
    )
    assert status == 401
