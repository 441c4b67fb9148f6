"""Receipts kept in PostgreSQL while Kafka would not take them, until the sweep can.

A receiver that could not publish a verified receipt stores its record here and answers
the provider as if it had (Twilio does not send a status callback again). The sweep
publishes what is kept, oldest first, and deletes it in the same transaction once the
broker has acknowledged it: a failed publish leaves every row for the next run. A receipt
may reach Kafka twice (a crash after the publish, or the receiver's producer delivering
it after all, late), which the receipts stage absorbs: a status moves only forward.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from notifyhub.db import PoolOrConnection

# A kept record: its Kafka key and value.
Kept = tuple[bytes | None, bytes]


async def keep(pool: PoolOrConnection, topic: str, key: bytes | None, message: bytes) -> None:
    await pool.execute(
        "INSERT INTO receipt_outbox (topic, message_key, message) VALUES ($1, $2, $3)",
        topic,
        key,
        message,
    )


async def publish_kept(
    pool: asyncpg.Pool,
    topic: str,
    limit: int,
    publish: Callable[[Sequence[Kept]], Awaitable[None]],
) -> int:
    """Publish up to ``limit`` records kept for ``topic``, oldest first, and forget them;
    how many.

    One transaction: the rows are taken ``FOR UPDATE SKIP LOCKED`` (a sweep on another
    worker, or a receiver keeping a new one, never waits), ``publish`` waits for the
    broker, then they are deleted. If ``publish`` raises, nothing is deleted.
    """
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            """SELECT id, message_key, message FROM receipt_outbox
               WHERE topic = $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED""",
            topic,
            limit,
        )
        if not rows:
            return 0
        await publish([(row["message_key"], row["message"]) for row in rows])
        await connection.execute(
            "DELETE FROM receipt_outbox WHERE id = ANY($1::bigint[])", [row["id"] for row in rows]
        )
        return len(rows)
