"""``/api/v1/notifications`` on a real worker: auth, validation, envelope, tenant isolation."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support.api import Tenant
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

VALID = {
    "channel": "push",
    "recipient_id": "user-42",
    "payload": {"body": "ping"},
}


async def post(
    http: aiohttp.ClientSession, worker: Worker, body: Any, headers: dict[str, str], **kwargs: Any
) -> tuple[int, dict[str, Any], aiohttp.ClientResponse]:
    async with http.post(
        f"{worker.base_url}/api/v1/notifications", json=body, headers=headers, **kwargs
    ) as response:
        return response.status, await response.json(), response


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "UNAUTHORIZED"),
        ({"X-API-Key": "0" * 64}, 401, "UNAUTHORIZED"),
    ],
)
async def test_requests_without_a_valid_key_are_refused(
    worker: Worker, http: aiohttp.ClientSession, headers: dict[str, Any], status: int, code: str
) -> None:
    got, body, _ = await post(http, worker, VALID, headers)
    assert got == status
    assert body["success"] is False
    assert body["error"]["code"] == code


@pytest.mark.parametrize("what", ["api_keys", "tenants"])
async def test_an_inactive_key_or_tenant_is_forbidden(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool, what: str
) -> None:
    column = "tenant_id" if what == "api_keys" else "id"
    await database.execute(f"UPDATE {what} SET is_active = false WHERE {column} = $1", tenant.id)
    got, body, _ = await post(http, worker, VALID, tenant.headers)
    assert got == 403
    assert body["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"priority": 11}, "priority"),
        ({"channel": "pigeon"}, "channel"),
        ({"recipient_id": ""}, "recipient_id"),
        ({"colour": "red"}, "colour"),
        ({"channel": "email"}, "recipient_address"),
        ({"payload": {}}, "payload.body"),
        ({"scheduled_at": "2030-01-01T00:00:00"}, "scheduled_at"),
    ],
)
async def test_invalid_fields_are_a_422_naming_the_field(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, change: dict[str, Any], field: str
) -> None:
    got, body, _ = await post(http, worker, {**VALID, **change}, tenant.headers)
    assert got == 422
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert field in body["error"]["details"], body


async def test_a_body_that_is_not_json_is_a_422(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    async with http.post(
        f"{worker.base_url}/api/v1/notifications", data=b"{nope", headers=tenant.headers
    ) as response:
        assert response.status == 422
        assert "body" in (await response.json())["error"]["details"]


async def test_a_body_over_one_megabyte_is_a_422_as_in_notifyhub(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    huge = {**VALID, "payload": {"body": "x" * (1024 * 1024)}}
    got, body, _ = await post(http, worker, huge, tenant.headers)
    assert got == 422
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["details"] == {"body": "at most 1 MB"}


async def test_request_ids_are_echoed_or_generated(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    _, body, response = await post(http, worker, VALID, {**tenant.headers, "X-Request-ID": "abc-1"})
    assert response.headers["X-Request-ID"] == "abc-1"
    assert body["meta"]["request_id"] == "abc-1"
    _, body, response = await post(http, worker, VALID, tenant.headers)
    assert uuid.UUID(response.headers["X-Request-ID"])
    assert body["meta"]["request_id"] == response.headers["X-Request-ID"]


async def test_a_notification_is_readable_right_after_its_202_and_only_by_its_tenant(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    got, body, _ = await post(http, worker, VALID, tenant.headers)
    assert got == 202
    url = f"{worker.base_url}/api/v1/notifications/{body['data']['id']}"
    async with http.get(url, headers=tenant.headers) as response:
        assert response.status == 200
        assert (await response.json())["data"]["id"] == body["data"]["id"]

    from notifyhub.db import tenants

    other = await tenants.create_tenant(database, "other tenant")
    _, other_key = await tenants.create_api_key(database, other["id"], "k")
    async with http.get(url, headers={"X-API-Key": other_key}) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "NOT_FOUND"


async def test_a_malformed_notification_id_is_a_422(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    async with http.get(
        f"{worker.base_url}/api/v1/notifications/not-a-uuid", headers=tenant.headers
    ) as response:
        assert response.status == 422
        assert "id" in (await response.json())["error"]["details"]


async def test_an_idempotency_key_header_returns_the_same_notification(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    headers = {**tenant.headers, "Idempotency-Key": f"order-{uuid.uuid4()}"}
    _, first, _ = await post(http, worker, VALID, headers)
    _, second, _ = await post(http, worker, VALID, headers)
    assert first["data"]["id"] == second["data"]["id"]
    assert second["data"]["idempotency_key"] == headers["Idempotency-Key"]


async def test_unknown_routes_and_methods_answer_in_the_envelope(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{worker.base_url}/api/v1/nothing-here") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "NOT_FOUND"
    async with http.put(f"{worker.base_url}/api/v1/notifications") as response:
        assert response.status == 405
        assert (await response.json())["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_health_reports_each_dependency(worker: Worker, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{worker.base_url}/health") as response:
        assert response.status == 200
        assert await response.json() == {
            "status": "ok",
            "checks": {"postgres": "ok", "redis": "ok", "kafka": "ok"},
        }


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/internal/tenants", {"name": "a\u0000b"}, "name"),
        (
            "POST",
            "/api/v1/notifications",
            {**VALID, "payload": {"body": "x", "k": "\u0000"}},
            "payload.k",
        ),
        ("GET", "/api/v1/users/a%00b", None, "url"),
        ("GET", "/api/v1/notifications?page=100000000000000000000000", None, "page"),
        ("PUT", "/api/v1/users/u/preferences/sms", {"frequency_cap": 2**31}, "frequency_cap"),
    ],
)
async def test_values_postgresql_cannot_store_are_a_422_not_a_500(
    worker: Worker,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    method: str,
    path: str,
    body: Any,
    field: str,
) -> None:
    headers = {**tenant.headers, **worker.admin_headers}
    async with http.request(method, worker.base_url + path, json=body, headers=headers) as response:
        assert response.status == 422
        assert field in (await response.json())["error"]["details"]
