"""What the topic tests share: subscribing many recipients through the API."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.api import Tenant, call
from tests.support.workers import Worker

# The API takes up to 1,000 recipients a call; a few calls at once keep a big topic quick.
SUBSCRIBE_BATCH = 1000
SUBSCRIBE_CONCURRENCY = 8


async def subscribe_many(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, key: str, recipient_ids: list[str]
) -> None:
    """Subscribe every recipient through the API, 1,000 a call."""
    url = f"{worker.base_url}/api/v1/topics/{key}/subscribers"
    gate = asyncio.Semaphore(SUBSCRIBE_CONCURRENCY)

    async def one(batch: list[str]) -> None:
        async with gate:
            status, body = await call(
                http, "POST", url, json={"recipient_ids": batch}, headers=tenant.headers
            )
            assert status == 200, body

    await asyncio.gather(
        *(
            one(recipient_ids[start : start + SUBSCRIBE_BATCH])
            for start in range(0, len(recipient_ids), SUBSCRIBE_BATCH)
        )
    )
