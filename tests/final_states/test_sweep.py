"""The sweep: a notification stuck in the pipeline is re-driven once, and delivered; one
that stays stuck after its re-drive fails with a reason naming its status and since when.

The sweep looks at every notification of its database, so these tests run a worker on a
database of its own: the shared one holds other tests' notifications, stuck on purpose.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis

from notifyhub.db import notifications, tenants
from notifyhub.db.migrate import migrate
from notifyhub.model.channels import Channel
from notifyhub.model.messages import IntakeMessage
from tests.support.api import Tenant, eventually, metric, wait_for_status
from tests.support.sink import sunk
from tests.support.stack import Services
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

# Short bounds, so that a test sees both of the sweep's actions.
SWEEP_SETTINGS = {
    "NOTIFYHUB_SWEEP_STUCK_SECONDS": "2",
    "NOTIFYHUB_SWEEP_GIVE_UP_SECONDS": "2",
    "NOTIFYHUB_SWEEP_INTERVAL_SECONDS": "0.5",
}


@pytest.fixture
async def own_database(services: Services, database: asyncpg.Pool) -> AsyncIterator[str]:
    """A fresh, migrated database on the services' PostgreSQL; its URL."""
    name = f"notifyhub_sweep_{uuid.uuid4().hex[:10]}"
    await database.execute(f"CREATE DATABASE {name}")
    url = f"{services.database_url.rsplit('/', 1)[0]}/{name}"
    try:
        await migrate(url)
        yield url
    finally:
        await database.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def stuck(pool: asyncpg.Pool, tenant_id: uuid.UUID, recipient: str) -> IntakeMessage:
    """A notification left ``queued`` an hour ago, with no record of it in Kafka."""
    message = IntakeMessage(
        id=uuid.uuid4(),
        tenant_id=tenant_id,
        channel=Channel.INAPP,
        recipient_id=recipient,
        payload={"body": f"found {recipient}"},
    )
    await notifications.insert_pending(pool, [message])
    await pool.execute(
        "UPDATE notifications SET status = 'queued', updated_at = now() - interval '1 hour' "
        "WHERE id = $1",
        message.id,
    )
    return message


async def test_a_stuck_notification_is_redriven_and_one_that_stays_stuck_fails(
    own_database: str,
    worker_factory: Callable[..., Worker],
    http: aiohttp.ClientSession,
    redis_client: redis.Redis,
) -> None:
    pool = await asyncpg.create_pool(own_database, min_size=1, max_size=2)
    try:
        row = await tenants.create_tenant(pool, "sweep")
        _, key = await tenants.create_api_key(pool, row["id"], "test key")
        tenant = Tenant(row["id"], key)
        lost = await stuck(pool, tenant.id, "lost")
        # A row the sweep cannot re-drive (its payload is no longer an object): it stays stuck.
        hopeless = await stuck(pool, tenant.id, "hopeless")
        await pool.execute("UPDATE notifications SET payload = '[]' WHERE id = $1", hopeless.id)

        worker = worker_factory(DATABASE_URL=own_database, **SWEEP_SETTINGS)
        try:
            delivered = await wait_for_status(http, worker, tenant, str(lost.id))
            assert delivered["status"] == "delivered"
            [record] = await eventually(
                lambda: sunk(redis_client, worker, notification_id=str(lost.id)), "the re-driven send"
            )
            assert record["body"] == "found lost"

            failed = await wait_for_status(http, worker, tenant, str(hopeless.id))
            assert failed["status"] == "failed"
            assert failed["status_reason"].startswith("stuck in queued since ")
            assert "re-driven at" in failed["status_reason"]
            assert (
                await metric(http, worker, "notifyhub_swept_notifications_total", action="redriven") == 1
            )
            assert (
                await metric(http, worker, "notifyhub_swept_notifications_total", action="failed") == 1
            )
        finally:
            worker.stop()
    finally:
        await pool.close()
