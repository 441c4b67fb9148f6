"""Fixtures: one real stack per session, workers as real processes, a tenant per test."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from notifyhub.db import tenants
from notifyhub.db.migrate import migrate
from notifyhub.providers.sink import sink_key
from tests.servers.ses import FakeSes
from tests.servers.smtp import FakeSmtp
from tests.servers.twilio import FakeTwilio
from tests.servers.webhook_receiver import WebhookReceiver
from tests.stack import Services, ServicesUnavailable, free_port, real_services

T = TypeVar("T")

# A worker is ready when its web server answers; Faust starts it after table recovery.
WORKER_READY_TIMEOUT_SECONDS = 90
WORKER_STOP_TIMEOUT_SECONDS = 30
# How long a test waits for the pipeline to reach an expected state.
PIPELINE_TIMEOUT_SECONDS = 20.0
# One set of secrets for every test worker, random as in production (a worker refuses the
# shipped defaults): workers of one deployment forward admin requests to each other and
# check each other's inbox tokens, so they must agree on them.
SESSION_SECRETS = {
    "NOTIFYHUB_ADMIN_TOKEN": f"admin-{uuid.uuid4().hex}",
    "NOTIFYHUB_WS_TOKEN_SECRET": f"ws-token-{uuid.uuid4().hex}",
    "NOTIFYHUB_WEBHOOK_SECRET_KEY": f"webhook-key-{uuid.uuid4().hex}",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fault tests last: they start a stack of their own, and break it on purpose."""
    items.sort(key=lambda item: item.get_closest_marker("faults") is not None)


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
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


@dataclass
class Worker:
    """A ``notifyhub worker`` process of its own deployment (app id and topic prefix)."""

    process: subprocess.Popen
    base_url: str
    topic_prefix: str
    log_path: Path
    admin_token: str
    env: dict[str, str]
    workdir: Path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-Admin-Token": self.admin_token}

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    @property
    def sink_key(self) -> str:
        return sink_key(self.topic_prefix)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WORKER_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when the machine dies."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start the process again, with its data directory and port, and wait until ready."""
        assert self.process.poll() is not None, "stop or kill the worker first"
        self.process = _spawn(self.env, self.workdir, self.log_path)
        _wait_until_ready(self)


def _spawn(env: dict[str, str], workdir: Path, log_path: Path) -> subprocess.Popen:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "notifyhub.cli.main", "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )


def start_worker(
    services: Services,
    workdir: Path,
    deployment: str,
    started: Callable[[Worker], None],
    **settings: str,
) -> Worker:
    """A worker of ``deployment`` on the services, with its own port and data under
    ``workdir``; handed to ``started`` before it is ready, so a failed start is still
    stopped."""
    port = free_port()
    env = {
        **os.environ,
        **services.environ(),
        "NOTIFYHUB_APP_ID": deployment,
        "NOTIFYHUB_TOPIC_PREFIX": deployment,
        "NOTIFYHUB_WEB_PORT": str(port),
        "NOTIFYHUB_DATA_DIR": str(workdir / "data"),
        "NOTIFYHUB_SINK_CHANNELS": "all",
        "NOTIFYHUB_TOPIC_PARTITIONS": "2",
        "NOTIFYHUB_TABLE_STANDBY_REPLICAS": "0",
        "NOTIFYHUB_BROKER_SESSION_TIMEOUT": "10",
        # Tests poll the API; the rate limit has its own tests with their own worker.
        "NOTIFYHUB_API_RATE_LIMIT": "1000000",
        **settings,
    }
    for name, value in SESSION_SECRETS.items():
        env.setdefault(name, value)
    log_path = workdir / "worker.log"
    worker = Worker(
        _spawn(env, workdir, log_path),
        f"http://127.0.0.1:{port}",
        deployment,
        log_path,
        env["NOTIFYHUB_ADMIN_TOKEN"],
        env,
        workdir,
    )
    started(worker)
    _wait_until_ready(worker)
    return worker


@pytest.fixture(scope="session")
def worker_factory(
    services: Services, database: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Worker]]:
    """Start workers; each call is a new deployment unless ``deployment`` names an earlier one."""
    started: list[Worker] = []

    def start(deployment: str | None = None, **settings: str) -> Worker:
        name = deployment or f"test-{uuid.uuid4().hex[:10]}"
        return start_worker(services, tmp_path_factory.mktemp(name), name, started.append, **settings)

    yield start
    for worker in started:
        worker.stop()


def _wait_until_ready(worker: Worker) -> None:
    import urllib.request

    deadline = time.monotonic() + WORKER_READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited during start-up:\n{worker.log_tail()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{worker.base_url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"worker not ready in {WORKER_READY_TIMEOUT_SECONDS}s:\n{worker.log_tail()}")


@pytest.fixture(scope="session")
def worker(worker_factory: Callable[..., Worker]) -> Worker:
    """The session's shared worker; tests keep apart by using their own tenant."""
    return worker_factory()


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


@dataclass(frozen=True)
class Tenant:
    id: uuid.UUID
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.api_key}


@pytest.fixture
async def tenant(database: asyncpg.Pool) -> Tenant:
    row = await tenants.create_tenant(database, f"tenant-{uuid.uuid4().hex[:8]}")
    _, raw_key = await tenants.create_api_key(database, row["id"], "test key")
    return Tenant(row["id"], raw_key)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


async def eventually(
    probe: Callable[[], Awaitable[T]], what: str, within: float = PIPELINE_TIMEOUT_SECONDS
) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``within`` s."""
    deadline = asyncio.get_running_loop().time() + within
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out after {within}s waiting for {what} (last seen: {last!r})")


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
    """One HTTP request: its status and JSON body (None when it has none; the text when it
    is not JSON, as the unsubscribe pages)."""
    async with http.request(method, url, **kwargs) as response:
        text = await response.text()
        if not text:
            return response.status, None
        if response.content_type != "application/json":
            return response.status, text
        return response.status, json.loads(text)


async def send_notification(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, **request: Any
) -> dict:
    """POST one notification; it must be accepted (202). The notification as answered."""
    status, body = await call(
        http, "POST", f"{worker.base_url}/api/v1/notifications", json=request, headers=tenant.headers
    )
    assert status == 202, body
    return body["data"]


async def notification_of(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str
) -> dict:
    _, body = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/notifications/{notification_id}",
        headers=tenant.headers,
    )
    return body["data"]


async def activity_feed(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, notification_id: str
) -> list[dict[str, Any]]:
    """The notification's activity feed (its delivery log), first page."""
    _, body = await call(
        http,
        "GET",
        f"{worker.base_url}/api/v1/notifications/{notification_id}/events",
        headers=tenant.headers,
    )
    return body["data"]


FINAL_STATUSES = (
    "sent",
    "delivered",
    "undelivered",
    "bounced",
    "complained",
    "failed",
    "dropped",
    "cancelled",
    "digested",
)


async def wait_for_status(
    http: aiohttp.ClientSession,
    worker: Worker,
    tenant: Tenant,
    notification_id: str,
    *wanted: str,
) -> dict:
    """Poll the notification until its status is one of ``wanted`` (any final one by default)."""
    statuses = wanted or FINAL_STATUSES

    async def reached() -> dict | None:
        found = await notification_of(http, worker, tenant, notification_id)
        return found if found["status"] in statuses else None

    return await eventually(reached, f"notification {notification_id} to be {'/'.join(statuses)}")


async def metric(http: aiohttp.ClientSession, worker: Worker, name: str, **labels: str) -> float | None:
    """A sample of the worker's ``/metrics``, or None when it has none with these labels."""
    async with http.get(f"{worker.base_url}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None
