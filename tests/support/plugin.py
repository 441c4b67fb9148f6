"""The fixtures (loaded by tests/conftest.py): one real stack per session, workers as real
processes, a tenant per test, and local servers speaking the providers' protocols.

Every test whose fixtures need the services (``services`` is in its fixture closure) gets
the ``stack`` marker here, so the unit lane (``-m "not stack and not faults"``, ``make
unit``) never reaches for Kafka, PostgreSQL or Redis. With ``NOTIFYHUB_NO_SERVICES`` set
(``make unit`` sets it), asking for the services fails the test instead of starting them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer

from notifyhub.db import tenants
from notifyhub.db.migrate import migrate
from tests.support.api import Tenant
from tests.support.servers.ses import FakeSes
from tests.support.servers.smtp import FakeSmtp
from tests.support.servers.twilio import FakeTwilio
from tests.support.servers.webhook_receiver import WebhookReceiver
from tests.support.stack import Services, ServicesUnavailable, real_services
from tests.support.workers import Worker, WorkerPool

# Set by `make unit`: the lane runs without services, and a test that asks for them fails.
NO_SERVICES = "NOTIFYHUB_NO_SERVICES"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the services ``stack`` (before ``-m`` selects), and run
    the fault tests last: they start a stack of their own, and break it on purpose."""
    for item in items:
        if "services" in getattr(item, "fixturenames", ()) and item.get_closest_marker("stack") is None:
            item.add_marker(pytest.mark.stack)
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    if os.environ.get(NO_SERVICES):
        pytest.fail(
            f"{NO_SERVICES} is set (the unit lane), but this test needs the services: "
            "it should carry the stack marker",
            pytrace=False,
        )
    try:
        with real_services() as found:
            yield found
    except ServicesUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs real services: {exc}", pytrace=False)
        pytest.skip(f"real services unavailable: {exc}")


@pytest.fixture(scope="session")
async def database(services: Services) -> AsyncIterator[asyncpg.Pool]:
    """The services' database, migrated, as a pool for assertions and set-up."""
    await migrate(services.database_url)
    pool = await asyncpg.create_pool(services.database_url, min_size=1, max_size=5)
    yield pool
    await pool.close()


@pytest.fixture
async def empty_database(services: Services, database: asyncpg.Pool) -> AsyncIterator[str]:
    """A fresh database on the session's server; its DSN."""
    name = f"migrate_{uuid.uuid4().hex[:12]}"
    await database.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = services.database_url.rpartition("/")
    yield f"{base}/{name}"
    await database.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def redis_client(services: Services) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(services.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def kafka_producer(services: Services) -> AsyncIterator[AIOKafkaProducer]:
    """A plain Kafka client, as a producer outside NotifyHub would use."""
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap_servers, acks="all")
    await producer.start()
    yield producer
    await producer.stop()


# The session's worker pool, where the module-scoped clean-up below can find it without
# asking for the services (a unit test module must not start them).
WORKER_POOL = pytest.StashKey[WorkerPool]()


@pytest.fixture(scope="session")
def worker_factory(
    request: pytest.FixtureRequest,
    services: Services,
    database: asyncpg.Pool,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[WorkerPool]:
    """Start workers; each call is a new deployment unless ``deployment`` names an earlier one.
    A worker stops at the end of the module that started it (``_stop_the_module_s_workers``)."""
    pool = WorkerPool(services, tmp_path_factory)
    request.config.stash[WORKER_POOL] = pool
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module", autouse=True)
def _stop_the_module_s_workers(request: pytest.FixtureRequest) -> Iterator[None]:
    pool = request.config.stash.get(WORKER_POOL, None)
    mark = pool.mark() if pool is not None else 0
    yield
    pool = request.config.stash.get(WORKER_POOL, None)
    if pool is not None:
        pool.stop_since(mark)


@pytest.fixture(scope="session")
def worker(worker_factory: WorkerPool) -> Worker:
    """The session's shared worker; tests keep apart by using their own tenant."""
    return worker_factory.keep(worker_factory())


# Local servers speaking the providers' wire protocols, one per test module that asks.
@pytest.fixture(scope="module")
async def twilio() -> AsyncIterator[FakeTwilio]:
    server = FakeTwilio()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def smtp() -> Iterator[FakeSmtp]:
    server = FakeSmtp()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ses() -> Iterator[FakeSes]:
    server = FakeSes()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    """A local webhook receiver (loopback: workers need NOTIFYHUB_WEBHOOK_ALLOWED_HOSTS)."""
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def tenant(database: asyncpg.Pool) -> Tenant:
    row = await tenants.create_tenant(database, f"tenant-{uuid.uuid4().hex[:8]}")
    _, raw_key = await tenants.create_api_key(database, row["id"], "test key")
    return Tenant(row["id"], raw_key)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session
