"""Making webhook endpoints in tests: through the API, or stored directly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import asyncpg

from tests.support.api import Tenant, call
from tests.support.workers import Worker

SECRET = "whsec-test-0123456789abcdef"


async def post_endpoint(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, url: str, events: list[str]
) -> tuple[int, Any]:
    """``POST /api/v1/webhooks``: the status and body, whatever they are."""
    return await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/webhooks",
        json={"url": url, "secret": SECRET, "events": events},
        headers=tenant.headers,
    )


async def store_endpoints(
    database: asyncpg.Pool,
    tenant: Tenant,
    urls: Sequence[str],
    secret_ciphertext: bytes,
    events: list[str],
) -> list[uuid.UUID]:
    """Endpoints written straight to the database, past the API's checks and cap."""
    ids = [uuid.uuid4() for _ in urls]
    await database.executemany(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, secret_ciphertext, events) "
        "VALUES ($1, $2, $3, $4, $5)",
        [(id_, tenant.id, url, secret_ciphertext, events) for id_, url in zip(ids, urls, strict=True)],
    )
    return ids
