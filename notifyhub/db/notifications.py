"""Notifications and their delivery log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from notifyhub.messages import DeliveryEvent, IntakeMessage
from notifyhub.status import CANCELLABLE_STATUSES, FINAL_STATUSES, Status

T = TypeVar("T")

NOTIFICATION_COLUMNS = (
    "id, tenant_id, idempotency_key, type, channel, recipient_id, recipient_address, "
    "template_id, payload, priority, status, status_reason, scheduled_at, created_at, updated_at"
)


def in_lock_order(rows: Sequence[T], key: Callable[[T], Any]) -> list[T]:
    """``rows`` sorted by notification id, the order every batch update locks them in.

    Batches of one stage and of another (the send stage's claim, the delivery events
    writer) update overlapping notifications at the same time; locking in one order
    keeps them from deadlocking. (``through_outages`` runs a batch again if they do.)
    """
    return sorted(rows, key=key)


def as_api_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A notification row in the HTTP API's shape."""
    notification = dict(row)
    notification["payload"] = json.loads(notification["payload"])
    return notification


async def insert(
    pool: asyncpg.Pool | asyncpg.Connection, message: IntakeMessage, status: Status
) -> asyncpg.Record | None:
    """Insert a notification; ``None`` when one with its id exists."""
    return await pool.fetchrow(
        f"""INSERT INTO notifications (id, tenant_id, idempotency_key, type, channel, recipient_id,
                recipient_address, template_id, payload, priority, status, scheduled_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
            ON CONFLICT (id) DO NOTHING
            RETURNING {NOTIFICATION_COLUMNS}""",
        message.id,
        message.tenant_id,
        message.idempotency_key,
        message.type,
        message.channel.value,
        message.recipient_id,
        message.recipient_address,
        uuid.UUID(message.template_id) if message.template_id else None,
        json.dumps(message.payload),
        message.priority,
        status.value,
        message.scheduled_at,
    )


def as_intake_message(row: asyncpg.Record) -> IntakeMessage:
    """The accepted request a stored notification came from (to send it again)."""
    return IntakeMessage(
        id=row["id"],
        tenant_id=row["tenant_id"],
        idempotency_key=row["idempotency_key"],
        type=row["type"],
        channel=row["channel"],
        recipient_id=row["recipient_id"],
        recipient_address=row["recipient_address"],
        template_id=str(row["template_id"]) if row["template_id"] else None,
        payload=json.loads(row["payload"]),
        priority=row["priority"],
        scheduled_at=row["scheduled_at"],
    )


async def get(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        notification_id,
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
    """Forget a notification that was never enqueued, and the idempotency key it held."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND notification_id = $2",
            tenant_id,
            notification_id,
        )
        await conn.execute(
            "DELETE FROM notifications WHERE tenant_id = $1 AND id = $2", tenant_id, notification_id
        )


async def apply_events(pool: asyncpg.Pool, events: Sequence[DeliveryEvent]) -> None:
    """Record a batch of status events: the status (forward only) and the delivery log.

    Idempotent: an event applied twice leaves one log row and the same status.
    """
    events = in_lock_order(events, key=lambda e: (e.notification_id, e.occurred_at))
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(
            """UPDATE notifications
                  SET status = $3, status_reason = $4, updated_at = $5
                WHERE id = $1 AND tenant_id = $2
                  -- an event from before a replay reopened the notification is history
                  AND (reopened_at IS NULL OR reopened_at <= $5)
                  AND (notification_status_rank(status) < notification_status_rank($3)
                       -- between the held states (scheduled, deferred) and between
                       -- processing and retrying, the later event wins
                       OR (notification_status_rank(status) = notification_status_rank($3)
                           AND notification_status_rank($3) IN (2, 3) AND updated_at <= $5))""",
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


async def page(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: dict[str, str | None],
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """A tenant's notifications, newest first, with optional recipient/channel/status filters."""
    where = (
        "tenant_id = $1 AND ($2::text IS NULL OR recipient_id = $2) "
        "AND ($3::text IS NULL OR channel = $3) AND ($4::text IS NULL OR status = $4)"
    )
    args = (tenant_id, filters.get("recipient_id"), filters.get("channel"), filters.get("status"))
    rows = await pool.fetch(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE {where} "
        "ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6",
        *args,
        limit,
        offset,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM notifications WHERE {where}", *args)
    return rows, total


async def cancel(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID
) -> asyncpg.Record | None:
    """Mark a not-yet-sent notification cancelled; ``None`` when missing or past cancelling.

    The send stage claims a notification before calling its provider (``claim_many_for_sending``),
    so after this commits no provider is asked to send it, wherever the message is now.
    """
    return await pool.fetchrow(
        f"""UPDATE notifications SET status = 'cancelled', status_reason = 'cancelled by the tenant',
                   updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = ANY($3::text[])
             RETURNING {NOTIFICATION_COLUMNS}""",
        tenant_id,
        notification_id,
        [s.value for s in CANCELLABLE_STATUSES],
    )


async def claim_many_for_sending(
    pool: asyncpg.Pool, notifications: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> set[uuid.UUID]:
    """Atomically move notifications (id, tenant) to ``processing`` unless they are final.

    Those left out must not be sent: cancelled, or (redelivered messages) sent already.
    """
    notifications = in_lock_order(notifications, key=lambda n: n[0])
    rows = await pool.fetch(
        """UPDATE notifications AS n SET status = 'processing', updated_at = now()
             FROM unnest($1::uuid[], $2::uuid[]) AS wanted (id, tenant_id)
            WHERE n.id = wanted.id AND n.tenant_id = wanted.tenant_id
              AND NOT (n.status = ANY($3::text[]))
            RETURNING n.id""",
        [n for n, _ in notifications],
        [t for _, t in notifications],
        [s.value for s in FINAL_STATUSES],
    )
    return {row["id"] for row in rows}


async def record_outcomes(pool: asyncpg.Pool, outcomes: Sequence[DeliveryEvent]) -> None:
    """Write the send stage's outcomes (delivered, failed, retrying) to the notifications at once.

    The delivery events writer records them too (with the delivery log), later and in
    batches; this write is what stops a replayed message from being claimed again.
    """
    if not outcomes:
        return
    outcomes = in_lock_order(outcomes, key=lambda e: e.notification_id)
    await pool.execute(
        """UPDATE notifications AS n
              SET status = o.status, status_reason = o.reason, updated_at = o.occurred_at
             FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])
                  AS o (id, tenant_id, status, reason, occurred_at)
            WHERE n.id = o.id AND n.tenant_id = o.tenant_id
              AND (notification_status_rank(n.status) < notification_status_rank(o.status)
                   OR (n.status = 'processing' AND o.status = 'retrying'))""",
        [e.notification_id for e in outcomes],
        [e.tenant_id for e in outcomes],
        [e.status.value for e in outcomes],
        [e.reason for e in outcomes],
        [e.occurred_at for e in outcomes],
    )


async def store_accepted(pool: asyncpg.Pool, message: IntakeMessage, retention_seconds: float) -> None:
    """Store a notification the pipeline accepted (``queued``), and remember its idempotency
    key so that the HTTP API answers a repeat with it. Either may exist already (the API
    stored them, or this is a redelivery): then they are left as they are."""
    if not message.idempotency_key:
        await insert(pool, message, Status.QUEUED)
        return
    async with pool.acquire() as conn, conn.transaction():
        await insert(conn, message, Status.QUEUED)
        if message.idempotency_key:
            await conn.execute(
                """INSERT INTO idempotency_keys (tenant_id, idempotency_key, notification_id,
                       expires_at)
                   VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                   ON CONFLICT DO NOTHING""",
                message.tenant_id,
                message.idempotency_key,
                message.id,
                retention_seconds,
            )


async def claim_idempotency_key(
    conn: asyncpg.Connection,
    tenant_id: uuid.UUID,
    idempotency_key: str,
    notification_id: uuid.UUID,
    retention_seconds: float,
) -> uuid.UUID:
    """The notification that owns the key: ``notification_id`` when the key is new or expired.

    Concurrent claims of one key queue on its row; exactly one of them wins.
    """
    owner = await conn.fetchval(
        """INSERT INTO idempotency_keys (tenant_id, idempotency_key, notification_id, expires_at)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))
           ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
               SET notification_id = EXCLUDED.notification_id, expires_at = EXCLUDED.expires_at
               WHERE idempotency_keys.expires_at <= now()
           RETURNING notification_id""",
        tenant_id,
        idempotency_key,
        notification_id,
        retention_seconds,
    )
    if owner is not None:
        return owner
    return await conn.fetchval(
        "SELECT notification_id FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2",
        tenant_id,
        idempotency_key,
    )
