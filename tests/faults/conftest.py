"""Fault tests get a stack of their own: they stop its services, which the rest of the
suite must never see."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis

from notifyhub.db import tenants
from notifyhub.db.migrate import migrate
from tests.support.api import Tenant
from tests.support.faults import FaultKit
from tests.support.stack import NativeStack, Services, native_stack
from tests.support.workers import Worker, start_worker


@pytest.fixture(scope="session")
def fault_stack() -> Iterator[tuple[NativeStack, Services]]:
    # Redis keeps its data through a restart: the sink's record of what was sent is there.
    with native_stack(redis_persistent=True) as (stack, services):
        yield stack, services


@pytest.fixture(scope="session")
async def fault_database(fault_stack: tuple[NativeStack, Services]) -> AsyncIterator[str]:
    """The fault stack's database URL, migrated (a pool would not survive its restarts)."""
    _, services = fault_stack
    await migrate(services.database_url)
    yield services.database_url


@pytest.fixture
async def fault_tenant(fault_database: str) -> Tenant:
    pool = await asyncpg.create_pool(fault_database, min_size=1, max_size=2)
    try:
        row = await tenants.create_tenant(pool, f"faults-{uuid.uuid4().hex[:8]}")
        _, raw_key = await tenants.create_api_key(pool, row["id"], "fault key")
    finally:
        await pool.close()
    return Tenant(row["id"], raw_key)


@pytest.fixture
async def fault_redis(fault_stack: tuple[NativeStack, Services]) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(fault_stack[1].redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def fault_workers(
    fault_stack: tuple[NativeStack, Services],
    fault_database: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Awaitable[list[Worker]]]]:
    """Start ``count`` workers on the fault stack (in parallel): of a new deployment, or
    of ``deployment`` when given."""
    _, services = fault_stack
    started: list[Worker] = []

    async def start(count: int, deployment: str | None = None, **settings: str) -> list[Worker]:
        settings = {"NOTIFYHUB_TOPIC_PARTITIONS": "4", **settings}

        def one(name: str) -> Worker:
            return start_worker(
                services, tmp_path_factory.mktemp(name), name, started.append, **settings
            )

        workers = []
        if deployment is None:
            # A new deployment's first worker creates its topics; a worker that joins while
            # they are missing is left without their partitions (Faust's assignor ignores
            # missing topics) until the next rebalance.
            deployment = f"faults-{uuid.uuid4().hex[:8]}"
            workers.append(await asyncio.to_thread(one, deployment))
            count -= 1
        workers.extend(await asyncio.gather(*(asyncio.to_thread(one, deployment) for _ in range(count))))
        return workers

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def kit(
    fault_stack: tuple[NativeStack, Services],
    fault_workers: Callable[..., Awaitable[list[Worker]]],
    fault_tenant: Tenant,
    fault_redis: redis.Redis,
    http: aiohttp.ClientSession,
) -> FaultKit:
    return FaultKit(*fault_stack, fault_workers, fault_tenant, fault_redis, http)
