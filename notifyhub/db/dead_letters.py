"""Dead letters: messages the pipeline could not process, kept for the admin DLQ API."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from notifyhub.messages import DeadLetter


async def insert_many(pool: asyncpg.Pool, letters: Sequence[DeadLetter]) -> None:
    """Store dead letters; one already stored (same id) is left as it is."""
    await pool.executemany(
        """INSERT INTO dead_letters (id, tenant_id, source_topic, channel, reason, message_key,
               message, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
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
            )
            for d in letters
        ],
    )
