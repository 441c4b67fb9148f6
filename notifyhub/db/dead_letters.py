"""Dead letters: messages the pipeline could not process, kept for the admin DLQ API."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from notifyhub.db import PoolOrConnection
from notifyhub.model.messages import DeadLetter

DEAD_LETTER_COLUMNS = (
    "id, tenant_id, source_topic, channel, notification_id, reason, attempts, message_key, "
    "message, created_at, replayed_at"
)
# A replay sends (topic, key, message) to Kafka and returns once the broker has it.
Publisher = Callable[[str, bytes | None, bytes], Awaitable[None]]


class AlreadyReplayed(Exception):
    """The dead letter was replayed before; replaying it again could send it twice."""


async def insert_many(pool: PoolOrConnection, letters: Sequence[DeadLetter]) -> None:
    """Store dead letters; one already stored (same id) is left as it is."""
    await pool.executemany(
        """INSERT INTO dead_letters (id, tenant_id, source_topic, channel, reason, message_key,
               message, created_at, notification_id, attempts)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (id) DO NOTHING""",
        [
            (
                d.id,
                d.tenant_id,
                d.source_topic,
                d.channel.value if d.channel else None,
                d.reason,
                d.message_key,
                d.message,
                d.failed_at,
                d.notification_id,
                d.attempts,
            )
            for d in letters
        ],
    )


async def page(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID | None,
    *,
    channel: str | None,
    unreplayed: bool,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """A tenant's dead letters (``None``: those without a tenant), newest first, and the total."""
    where = (
        "tenant_id IS NOT DISTINCT FROM $1 AND ($2::text IS NULL OR channel = $2) "
        "AND (NOT $3 OR replayed_at IS NULL)"
    )
    rows = await pool.fetch(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters WHERE {where} "
        "ORDER BY created_at DESC, id LIMIT $4 OFFSET $5",
        tenant_id,
        channel,
        unreplayed,
        limit,
        offset,
    )
    total = await pool.fetchval(
        f"SELECT count(*) FROM dead_letters WHERE {where}", tenant_id, channel, unreplayed
    )
    return list(rows), total


async def get(
    pool: asyncpg.Pool, tenant_id: uuid.UUID | None, letter_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters "
        "WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
        letter_id,
        tenant_id,
    )


async def delete(pool: asyncpg.Pool, tenant_id: uuid.UUID | None, letter_id: uuid.UUID) -> bool:
    status = await pool.execute(
        "DELETE FROM dead_letters WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2",
        letter_id,
        tenant_id,
    )
    return status.endswith(" 1")


async def replay(
    pool: asyncpg.Pool, tenant_id: uuid.UUID | None, letter_id: uuid.UUID, publish: Publisher
) -> asyncpg.Record | None:
    """Send a dead letter's message back to the topic it came from, once.

    One transaction, in this order: lock the letter (concurrent replays wait, then see it
    replayed); reopen its notification (``failed`` → ``queued``, so the send stage claims
    it again, and the sweep may re-drive it once more); publish and wait for the broker;
    mark the letter replayed; commit. If the publish fails nothing changes. If the commit
    fails after the publish, the notification is still ``failed``, so the message is not
    sent, and the letter can be replayed again.
    Returns None for an unknown letter; raises AlreadyReplayed for a replayed one.
    """
    async with pool.acquire() as conn, conn.transaction():
        letter = await conn.fetchrow(
            f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters "
            "WHERE id = $1 AND tenant_id IS NOT DISTINCT FROM $2 FOR UPDATE",
            letter_id,
            tenant_id,
        )
        if letter is None:
            return None
        if letter["replayed_at"] is not None:
            raise AlreadyReplayed(str(letter_id))
        if letter["notification_id"] is not None:
            await conn.execute(
                """UPDATE notifications
                      SET status = 'queued', status_reason = 'replayed from the dead-letter queue',
                          updated_at = now(), reopened_at = now(), redriven_at = NULL
                    WHERE id = $1 AND tenant_id = $2 AND status = 'failed'""",
                letter["notification_id"],
                letter["tenant_id"],
            )
        await publish(letter["source_topic"], letter["message_key"], letter["message"])
        return await conn.fetchrow(
            f"UPDATE dead_letters SET replayed_at = now() WHERE id = $1 RETURNING {DEAD_LETTER_COLUMNS}",
            letter_id,
        )
