"""Revoking an API key or deactivating a tenant takes effect at once on every worker,
although each worker caches the owners of the keys it has seen (notifyhub/web/auth.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from notifyhub.db import tenants
from tests.support.api import Tenant, call
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def other_worker(worker_factory: Callable[..., Worker]) -> Worker:
    """A second worker process: a cache of key owners of its own."""
    return worker_factory()


async def use_key(
    http: aiohttp.ClientSession, worker: Worker, api_key: str
) -> tuple[int, dict[str, Any]]:
    return await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/templates?per_page=1",
        headers={"X-API-Key": api_key},
    )


async def assert_answers(
    http: aiohttp.ClientSession, workers: list[Worker], keys: list[str], status: int, message: str
) -> None:
    for worker in workers:
        for key in keys:
            got, body = await use_key(http, worker, key)
            assert got == status, (worker.base_url, body)
            if message:
                assert body["error"]["message"] == message


async def test_a_revoked_key_is_refused_at_once_by_every_worker_that_cached_it(
    worker: Worker,
    other_worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    database: asyncpg.Pool,
) -> None:
    key_id = await database.fetchval("SELECT id FROM api_keys WHERE tenant_id = $1", tenant.id)
    workers = [worker, other_worker]
    # Both workers now hold the key's owner in their cache.
    await assert_answers(http, workers, [tenant.api_key], 200, "")

    status, body = await call(
        http,
        "POST",
        f"{other_worker.base_url}/internal/tenants/{tenant.id}/api-keys/{key_id}/revoke",
        headers=other_worker.admin_headers,
    )
    assert status == 200, body
    assert body["data"]["is_active"] is False

    await assert_answers(http, workers, [tenant.api_key], 403, "this API key is inactive")


async def test_a_deactivated_tenant_is_refused_at_once_and_let_in_again_at_once(
    worker: Worker,
    other_worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    database: asyncpg.Pool,
) -> None:
    _, second_key = await tenants.create_api_key(database, tenant.id, "second key")
    keys, workers = [tenant.api_key, second_key], [worker, other_worker]
    await assert_answers(http, workers, keys, 200, "")
    tenant_url = f"{worker.base_url}/internal/tenants/{tenant.id}"

    status, body = await call(
        http, "PATCH", tenant_url, json={"is_active": False}, headers=worker.admin_headers
    )
    assert status == 200, body
    assert body["data"]["is_active"] is False
    await assert_answers(http, workers, keys, 403, "this tenant is inactive")

    status, body = await call(
        http, "PATCH", tenant_url, json={"is_active": True}, headers=worker.admin_headers
    )
    assert status == 200, body
    await assert_answers(http, workers, keys, 200, "")


async def test_revoking_one_key_leaves_the_tenants_other_keys_alone(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    row, spare_key = await tenants.create_api_key(database, tenant.id, "spare key")
    await assert_answers(http, [worker], [tenant.api_key, spare_key], 200, "")
    status, _ = await call(
        http,
        "POST",
        f"{worker.base_url}/internal/tenants/{tenant.id}/api-keys/{row['id']}/revoke",
        headers=worker.admin_headers,
    )
    assert status == 200
    await assert_answers(http, [worker], [spare_key], 403, "this API key is inactive")
    await assert_answers(http, [worker], [tenant.api_key], 200, "")
