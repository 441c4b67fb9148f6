"""``/internal/*``: tenants and API keys, behind the admin token."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifyhub.db.tenants import hash_api_key
from tests.support.api import call
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-Admin-Token": "wrong"}, 403)])
async def test_admin_routes_need_the_admin_token(
    worker: Worker, http: aiohttp.ClientSession, headers: dict[str, Any], status: int
) -> None:
    got, body = await call(
        http, "POST", f"{worker.base_url}/internal/tenants", json={"name": "x"}, headers=headers
    )
    assert got == status
    assert body["error"]["code"] == ("UNAUTHORIZED" if status == 401 else "FORBIDDEN")


async def provision(
    http: aiohttp.ClientSession, worker: Worker, name: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A tenant and an API key made through the admin API: (tenant, key) as answered."""
    status, tenant = await call(
        http,
        "POST",
        f"{worker.base_url}/internal/tenants",
        json={"name": name},
        headers=worker.admin_headers,
    )
    assert status == 201, tenant
    status, key = await call(
        http,
        "POST",
        f"{worker.base_url}/internal/tenants/{tenant['data']['id']}/api-keys",
        json={"name": f"{name} key"},
        headers=worker.admin_headers,
    )
    assert status == 201, key
    return tenant["data"], key["data"]


async def test_a_new_tenant_and_key_can_send_and_only_the_hash_is_stored(
    worker: Worker, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    tenant, key = await provision(http, worker, "Acme")
    assert tenant["name"] == "Acme"
    assert key["tenant_id"] == tenant["id"]
    raw_key = key["api_key"]
    assert len(raw_key) == 64 and int(raw_key, 16) >= 0
    stored = await database.fetchval("SELECT key_hash FROM api_keys WHERE id = $1", uuid.UUID(key["id"]))
    assert stored == hash_api_key(raw_key) != raw_key

    status, _ = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/notifications",
        json={"channel": "inapp", "recipient_id": "u", "payload": {"body": "hi"}},
        headers={"X-API-Key": raw_key},
    )
    assert status == 202


async def test_a_new_tenant_gets_the_starter_templates(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    _, key = await provision(http, worker, "Starter")
    status, listed = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/templates?per_page=100",
        headers={"X-API-Key": key["api_key"]},
    )
    assert status == 200
    names = {(t["channel"], t["name"]) for t in listed["data"]}
    assert {
        ("email", "welcome"),
        ("email", "password_reset"),
        ("email", "alert"),
        ("sms", "otp"),
        ("sms", "alert"),
        ("push", "default"),
        ("inapp", "default"),
    } <= names


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/internal/tenants", {"name": ""}, 422, "name"),
        ("/internal/tenants", {"name": "x", "plan": "gold"}, 422, "plan"),
        (f"/internal/tenants/{uuid.uuid4()}/api-keys", {"name": "k"}, 404, None),
        ("/internal/tenants/not-a-uuid/api-keys", {"name": "k"}, 422, "tenant_id"),
    ],
)
async def test_admin_input_errors(
    worker: Worker,
    http: aiohttp.ClientSession,
    path: str,
    body: dict[str, Any],
    status: int,
    field: str | None,
) -> None:
    got, answer = await call(
        http, "POST", worker.base_url + path, json=body, headers=worker.admin_headers
    )
    assert got == status
    if field:
        assert field in answer["error"]["details"]


async def test_revoking_a_key_answers_the_key_inactive_and_again_the_same(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    tenant, key = await provision(http, worker, "Revoker")
    url = f"{worker.base_url}/internal/tenants/{tenant['id']}/api-keys/{key['id']}/revoke"
    for _ in range(2):
        status, body = await call(http, "POST", url, headers=worker.admin_headers)
        assert status == 200, body
        assert body["data"] == {
            "id": key["id"],
            "tenant_id": tenant["id"],
            "name": key["name"],
            "is_active": False,
            "created_at": key["created_at"],
        }


async def test_a_key_is_revoked_only_under_its_own_tenant(
    worker: Worker, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    _, key = await provision(http, worker, "Owner")
    stranger, _ = await provision(http, worker, "Stranger")
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/internal/tenants/{stranger['id']}/api-keys/{key['id']}/revoke",
        headers=worker.admin_headers,
    )
    assert status == 404, body
    assert await database.fetchval("SELECT is_active FROM api_keys WHERE id = $1", uuid.UUID(key["id"]))


async def test_deactivating_a_tenant_answers_the_tenant(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    tenant, _ = await provision(http, worker, "Sleeper")
    url = f"{worker.base_url}/internal/tenants/{tenant['id']}"
    status, body = await call(
        http, "PATCH", url, json={"is_active": False}, headers=worker.admin_headers
    )
    assert status == 200, body
    assert body["data"]["id"] == tenant["id"]
    assert body["data"]["name"] == "Sleeper"
    assert body["data"]["is_active"] is False


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", f"/internal/tenants/{uuid.uuid4()}", {"is_active": False}),
        ("POST", f"/internal/tenants/{uuid.uuid4()}/api-keys/{uuid.uuid4()}/revoke", None),
    ],
)
@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-Admin-Token": "wrong"}, 403)])
async def test_revocation_routes_need_the_admin_token(
    worker: Worker,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, Any],
    status: int,
) -> None:
    got, _ = await call(http, method, worker.base_url + path, json=body, headers=headers)
    assert got == status


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"),
    [
        ("PATCH", f"/internal/tenants/{uuid.uuid4()}", {"is_active": False}, 404, None),
        ("PATCH", "/internal/tenants/not-a-uuid", {"is_active": False}, 422, "tenant_id"),
        ("PATCH", f"/internal/tenants/{uuid.uuid4()}", {}, 422, "is_active"),
        ("PATCH", f"/internal/tenants/{uuid.uuid4()}", {"is_active": "no"}, 422, "is_active"),
        ("POST", f"/internal/tenants/{uuid.uuid4()}/api-keys/{uuid.uuid4()}/revoke", None, 404, None),
        ("POST", f"/internal/tenants/{uuid.uuid4()}/api-keys/nope/revoke", None, 422, "key_id"),
    ],
)
async def test_revocation_input_errors(
    worker: Worker,
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    field: str | None,
) -> None:
    got, answer = await call(
        http, method, worker.base_url + path, json=body, headers=worker.admin_headers
    )
    assert got == status, answer
    if field:
        assert field in answer["error"]["details"]
