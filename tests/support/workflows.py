"""What the digest and escalation tests share: reading what the sink recorded for a tenant,
and polling a notification that may not exist yet."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import redis.asyncio as redis

from tests.support.api import Tenant, call, eventually
from tests.support.workers import Worker


async def sunk(redis_client: redis.Redis, worker: Worker, tenant_id: object) -> list[dict[str, Any]]:
    """What the worker's sink recorded for the tenant, oldest first."""
    records = [json.loads(raw) for raw in await redis_client.lrange(worker.sink_key, 0, -1)]
    return [r for r in records if r["tenant_id"] == str(tenant_id)]


async def reaches(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str, *statuses: str
) -> dict[str, Any]:
    """Poll a notification that may not exist yet (a digest, an escalation step) until its
    status is one of ``statuses``."""

    async def probe() -> dict[str, Any] | None:
        status, body = await call(
            http,
            "GET",
            f"{worker.base_url}/api/v1/notifications/{notification_id}",
            headers=tenant.headers,
        )
        return body["data"] if status == 200 and body["data"]["status"] in statuses else None

    return await eventually(probe, f"notification {notification_id} to be {'/'.join(statuses)}")
