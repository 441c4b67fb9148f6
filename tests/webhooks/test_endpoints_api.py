"""``/api/v1/webhooks`` against hostile input: malformed and non-public URLs are a 422
naming ``url``, a tenant's endpoints are capped, and the list comes a page at a time."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import aiohttp
import asyncpg
import pytest

from notifyhub.web.webhooks import MAX_ENDPOINTS_PER_TENANT
from tests.support.api import Tenant, call
from tests.support.webhooks import post_endpoint, store_endpoints
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

EVENTS = ["notification.failed"]
# An IP literal: saved without a DNS lookup, and never called (nothing fails in these tests).
PUBLIC_URL = "https://93.184.215.14/hook"

MALFORMED = {
    "unclosed IPv6 bracket": "http://[::1/",
    "not IPv6 in brackets": "http://[abc]/",
    "label over 63 characters": f"http://{'a' * 64}.example.com/",
    "empty label": "http://a..example/",
    "port 0": "http://example.com:0/",
    "port 99999": "http://example.com:99999/",
    "ftp": "ftp://example.com/hook",
    "file": "file:///etc/passwd",
    "gopher": "gopher://example.com:70/",
    "user and password": "http://user:password@example.com/",
    "over 2048 characters": "https://example.com/" + "a" * 2048,
    "tab in host": "http://exa\tmple.com/",
    "short IPv4": "http://127.1/",
}

NOT_PUBLIC = {
    "loopback name": "http://localhost:8080/hook",
    "CGNAT": "http://100.64.0.1/hook",
    "benchmarking": "http://198.18.0.1/hook",
    "reserved": "http://240.0.0.1/hook",
    "multicast": "http://224.0.0.1/hook",
    "documentation": "http://192.0.2.1/hook",
    "site-local": "http://[fec0::1]/hook",
    "6to4 metadata": "http://[2002:a9fe:a9fe::]/latest/meta-data",
    "6to4 loopback": "http://[2002:7f00:1::]/hook",
    "IPv4-mapped metadata": "http://[::ffff:169.254.169.254]/latest/meta-data",
    "NAT64 loopback": "http://[64:ff9b::7f00:1]/hook",
    "Teredo": "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
}


@pytest.mark.parametrize("url", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_malformed_url_is_a_422_naming_url(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, url: str
) -> None:
    status, body = await post_endpoint(http, worker, tenant, url, EVENTS)
    assert status == 422, body
    assert list(body["error"]["details"]) == ["url"], body


@pytest.mark.parametrize("url", NOT_PUBLIC.values(), ids=NOT_PUBLIC.keys())
async def test_a_url_that_is_not_public_is_refused_without_saying_where_it_leads(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, url: str
) -> None:
    status, body = await post_endpoint(http, worker, tenant, url, EVENTS)
    assert status == 422, body
    assert body["error"]["details"] == {"url": "refused: not a public address"}


async def test_a_changed_url_is_checked_like_a_new_one(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    status, created = await post_endpoint(http, worker, tenant, PUBLIC_URL, EVENTS)
    assert status == 201, created
    url = f"{worker.base_url}/api/v1/webhooks/{created['data']['id']}"
    for bad, expected in (
        ("http://[::1/", None),
        ("http://[::ffff:127.0.0.1]/", "refused: not a public address"),
    ):
        status, body = await call(http, "PUT", url, json={"url": bad}, headers=tenant.headers)
        assert status == 422, body
        assert list(body["error"]["details"]) == ["url"]
        if expected:
            assert body["error"]["details"]["url"] == expected


async def _fill(database: asyncpg.Pool, tenant: Tenant, count: int) -> list[uuid.UUID]:
    """``count`` endpoints stored directly (the cap is what is tested, not creating them)."""
    return await store_endpoints(database, tenant, [PUBLIC_URL] * count, b"not used", EVENTS)


async def test_a_tenant_has_at_most_the_cap_of_endpoints_even_when_creating_at_once(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    await _fill(database, tenant, MAX_ENDPOINTS_PER_TENANT - 2)
    answers = await asyncio.gather(
        *(post_endpoint(http, worker, tenant, PUBLIC_URL, EVENTS) for _ in range(5))
    )
    assert sorted(status for status, _ in answers) == [201, 201, 409, 409, 409]
    refused = next(body for status, body in answers if status == 409)
    assert refused["error"]["code"] == "CONFLICT"
    assert f"at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints" in refused["error"]["message"]
    count = await database.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1", tenant.id
    )
    assert count == MAX_ENDPOINTS_PER_TENANT

    _, listed = await call(
        http, "GET", f"{worker.base_url}/api/v1/webhooks?per_page=1", headers=tenant.headers
    )
    status, _ = await call(
        http,
        "DELETE",
        f"{worker.base_url}/api/v1/webhooks/{listed['data'][0]['id']}",
        headers=tenant.headers,
    )
    assert status == 204
    status, body = await post_endpoint(http, worker, tenant, PUBLIC_URL, EVENTS)
    assert status == 201, body


async def test_the_endpoint_list_comes_a_page_at_a_time(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    stored = await _fill(database, tenant, 45)

    async def page(query: str) -> dict[str, Any]:
        status, body = await call(
            http, "GET", f"{worker.base_url}/api/v1/webhooks{query}", headers=tenant.headers
        )
        assert status == 200, body
        return cast(dict[str, Any], body)

    first = await page("")
    assert (len(first["data"]), first["meta"]["page"], first["meta"]["per_page"]) == (20, 1, 20)
    assert first["meta"]["total"] == 45
    pages = [await page(f"?page={n}&per_page=20") for n in (1, 2, 3)]
    assert [len(p["data"]) for p in pages] == [20, 20, 5]
    listed = [e["id"] for p in pages for e in p["data"]]
    assert sorted(listed) == sorted(str(id_) for id_ in stored)
    assert (await page("?page=4"))["data"] == []

    status, body = await call(
        http, "GET", f"{worker.base_url}/api/v1/webhooks?page=100001", headers=tenant.headers
    )
    assert status == 422 and "page" in body["error"]["details"], body
