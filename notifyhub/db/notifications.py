"""Notifications and their delivery log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from notifyhub.messages import DeliveryEvent, IntakeMessage
from notifyhub.status import Status

NOTIFICATION_COLUMNS = (
    "id, tenant_id, idempotency_key, type, channel, recipient_id, recipient_address, "
    "template_id, payload, priority, status, status_reason, scheduled_at, created_at, updated_at"
)


def as_api_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A notification row in the HTTP API's shape."""
    notification = dict(row)
    notification["payload"] = json.loads(notification["payload"])
    return notification


async def insert(
    pool: asyncpg.Pool | asyncpg.Connection, message: IntakeMessage, status: Status
) -> asyncpg.Record | None:
    """Insert a notification; ``None`` when its id or its tenant's idempotency key exists."""
    return await pool.fetchrow(
        f"""INSERT INTO notifications (id, tenant_id, idempotency_key, type, channel, recipient_id,
                recipient_address, template_id, payload, priority, status, scheduled_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT DO NOTHING
            RETURNING {NOTIFICATION_COLUMNS}""",
        message.id,
        message.tenant_id,
        message.idempotency_key,
        message.type,
        message.channel.value,
        message.recipient_id,
        message.recipient_address,
        message.template_id,
        json.dumps(message.payload),
        message.priority,
        status.value,
        message.scheduled_at,
    )


async def get(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        notification_id,
    )


async def get_by_idempotency_key(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, idempotency_key: str
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications "
        "WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant_id,
        idempotency_key,
    )


async def exists(pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT 1 FROM notifications WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            notification_id,
        )
    )


async def delete(pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID) -> None:
    await pool.execute(
        "DELETE FROM notifications WHERE tenant_id = $1 AND id = $2", tenant_id, notification_id
    )


async def apply_events(pool: asyncpg.Pool, events: Sequence[DeliveryEvent]) -> None:
    """Record a batch of status events: the status (forward only) and the delivery log.

    Idempotent: an event applied twice leaves one log row and the same status.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            """UPDATE notifications
                  SET status = $3, status_reason = $4, updated_at = $5
                WHERE id = $1 AND tenant_id = $2
                  AND notification_status_rank(status) < notification_status_rank($3)""",
            [(e.notification_id, e.tenant_id, e.status.value, e.reason, e.occurred_at) for e in events],
        )
        await conn.executemany(
            """INSERT INTO delivery_log (event_id, notification_id, tenant_id, status, provider,
                   provider_message_id, reason, attempt, occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (event_id) DO NOTHING""",
            [
                (
                    e.event_id,
                    e.notification_id,
                    e.tenant_id,
                    e.status.value,
                    e.provider,
                    e.provider_message_id,
                    e.reason,
                    e.attempt,
                    e.occurred_at,
                )
                for e in events
            ],
        )
