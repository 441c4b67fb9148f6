"""Topics, their subscribers, and the sends fanned out to them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from notifyhub.db import AnyConnection, returned_row
from notifyhub.model.channels import Channel

TOPIC_COLUMNS = "id, key, name, subscriber_count, created_at, updated_at"
SEND_COLUMNS = (
    "id, tenant_id, topic_id, type, channel, template_id, payload, priority, locale, "
    "subscriber_count, status, step, last_recipient_id, stored, skipped, created_at, finished_at"
)


class TooManyTopics(Exception):
    """The tenant has as many topics as it may have; delete one to create another."""


class TooManySubscribers(Exception):
    """The topic would have more subscribers than it may have; unsubscribe some first."""


def as_api_dict(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row)


def decoded_payload(send: asyncpg.Record) -> dict[str, Any]:
    """A send's payload, decoded (asyncpg hands jsonb over as text)."""
    payload: dict[str, Any] = json.loads(send["payload"])
    return payload


async def create_capped(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, key: str, name: str, cap: int
) -> asyncpg.Record | None:
    """A new topic; ``None`` when the tenant has one with this key; TooManyTopics at ``cap``.

    The tenant's row is locked first, so two creates at once cannot both take the last place.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        count = await conn.fetchval("SELECT count(*) FROM topics WHERE tenant_id = $1", tenant_id)
        if count >= cap:
            raise TooManyTopics(f"the tenant has {count} topics, the most it may have is {cap}")
        return await conn.fetchrow(
            f"""INSERT INTO topics (id, tenant_id, key, name) VALUES ($1, $2, $3, $4)
                ON CONFLICT (tenant_id, key) DO NOTHING
                RETURNING {TOPIC_COLUMNS}""",
            uuid.uuid4(),
            tenant_id,
            key,
            name,
        )


async def get(pool: asyncpg.Pool, tenant_id: uuid.UUID, key: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {TOPIC_COLUMNS} FROM topics WHERE tenant_id = $1 AND key = $2", tenant_id, key
    )


async def page(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    """A tenant's topics, oldest first."""
    rows = await pool.fetch(
        f"SELECT {TOPIC_COLUMNS} FROM topics WHERE tenant_id = $1 "
        "ORDER BY created_at, id LIMIT $2 OFFSET $3",
        tenant_id,
        limit,
        offset,
    )
    total = await pool.fetchval("SELECT count(*) FROM topics WHERE tenant_id = $1", tenant_id)
    return rows, total


async def delete(pool: asyncpg.Pool, tenant_id: uuid.UUID, key: str) -> asyncpg.Record | None:
    """Delete a topic with its subscribers and sends (a fan-out under way stops at its next
    chunk); the topic as it was, or ``None`` when the tenant has none with this key."""
    return await pool.fetchrow(
        f"DELETE FROM topics WHERE tenant_id = $1 AND key = $2 RETURNING {TOPIC_COLUMNS}",
        tenant_id,
        key,
    )


async def subscribe(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, key: str, recipient_ids: Sequence[str], cap: int
) -> asyncpg.Record | None:
    """Subscribe recipients (those subscribed already stay as they are); the topic after it,
    ``None`` when the tenant has no such topic, TooManySubscribers past ``cap``.

    The topic's row is locked, so its count stays exact under concurrent calls.
    """
    async with pool.acquire() as conn, conn.transaction():
        topic = await conn.fetchrow(
            "SELECT id, subscriber_count FROM topics WHERE tenant_id = $1 AND key = $2 FOR UPDATE",
            tenant_id,
            key,
        )
        if topic is None:
            return None
        added = await conn.fetchval(
            """WITH added AS (
                   INSERT INTO topic_subscribers (topic_id, recipient_id)
                   SELECT $1, r FROM unnest($2::text[]) AS r
                   ON CONFLICT DO NOTHING
                   RETURNING 1)
               SELECT count(*) FROM added""",
            topic["id"],
            list(recipient_ids),
        )
        if topic["subscriber_count"] + added > cap:
            raise TooManySubscribers(
                f"the topic has {topic['subscriber_count']} subscribers and {added} more would be "
                f"over the most it may have, {cap}"
            )
        return await _counted(conn, topic["id"], added)


async def unsubscribe(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, key: str, recipient_ids: Sequence[str]
) -> asyncpg.Record | None:
    """Unsubscribe recipients (those not subscribed are ignored); the topic after it, or
    ``None`` when the tenant has no such topic."""
    async with pool.acquire() as conn, conn.transaction():
        topic_id = await conn.fetchval(
            "SELECT id FROM topics WHERE tenant_id = $1 AND key = $2 FOR UPDATE", tenant_id, key
        )
        if topic_id is None:
            return None
        removed = await conn.fetchval(
            """WITH removed AS (
                   DELETE FROM topic_subscribers
                    WHERE topic_id = $1 AND recipient_id = ANY($2::text[])
                   RETURNING 1)
               SELECT count(*) FROM removed""",
            topic_id,
            list(recipient_ids),
        )
        return await _counted(conn, topic_id, -removed)


async def _counted(conn: AnyConnection, topic_id: uuid.UUID, change: int) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"""UPDATE topics SET subscriber_count = subscriber_count + $2, updated_at = now()
             WHERE id = $1 RETURNING {TOPIC_COLUMNS}""",
        topic_id,
        change,
    )
    return returned_row(row)  # the caller has locked the topic's row


async def subscribers_page(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, key: str, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int] | None:
    """A topic's subscribers by recipient id; ``None`` when the tenant has no such topic."""
    topic = await get(pool, tenant_id, key)
    if topic is None:
        return None
    rows = await pool.fetch(
        "SELECT recipient_id, subscribed_at FROM topic_subscribers WHERE topic_id = $1 "
        "ORDER BY recipient_id LIMIT $2 OFFSET $3",
        topic["id"],
        limit,
        offset,
    )
    return rows, topic["subscriber_count"]


async def create_send(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    key: str,
    fields: dict[str, Any],
) -> asyncpg.Record | None:
    """Record a send to the topic's subscribers of this moment; ``None`` when the tenant has
    no such topic. ``fields``: type, channel, template_id (an id), payload, priority, locale."""
    return await pool.fetchrow(
        f"""INSERT INTO topic_sends (id, tenant_id, topic_id, type, channel, template_id, payload,
                priority, locale, subscriber_count)
            SELECT $1, $2, t.id, $4, $5, $6, $7::jsonb, $8, $9, t.subscriber_count
              FROM topics t WHERE t.tenant_id = $2 AND t.key = $3
            RETURNING {SEND_COLUMNS}""",
        uuid.uuid4(),
        tenant_id,
        key,
        fields["type"],
        fields["channel"],
        uuid.UUID(fields["template_id"]) if fields["template_id"] else None,
        json.dumps(fields["payload"]),
        fields["priority"],
        fields["locale"],
    )


async def forget_send(pool: asyncpg.Pool, send_id: uuid.UUID) -> None:
    """Delete a send that never reached Kafka."""
    await pool.execute("DELETE FROM topic_sends WHERE id = $1", send_id)


async def get_send(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, key: str, send_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"""SELECT {", ".join(f"s.{c.strip()}" for c in SEND_COLUMNS.split(","))}
              FROM topic_sends s JOIN topics t ON t.id = s.topic_id
             WHERE s.tenant_id = $1 AND t.key = $2 AND s.id = $3""",
        tenant_id,
        key,
        send_id,
    )


async def send_for_fanout(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, send_id: uuid.UUID
) -> asyncpg.Record | None:
    """The send as its fan-out reads it; ``None`` once its topic (and so it) was deleted."""
    return await pool.fetchrow(
        f"SELECT {SEND_COLUMNS} FROM topic_sends WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        send_id,
    )


async def next_subscribers(pool: asyncpg.Pool, send: asyncpg.Record, limit: int) -> list[str]:
    """The send's next ``limit`` subscribers after the last one done, by recipient id (keyset:
    each chunk is an index range, however deep the walk). Only those subscribed when the
    send was made: the 202's count is who it reaches."""
    rows = await pool.fetch(
        """SELECT recipient_id FROM topic_subscribers
            WHERE topic_id = $1 AND recipient_id > $2 AND subscribed_at <= $3
            ORDER BY recipient_id LIMIT $4""",
        send["topic_id"],
        send["last_recipient_id"] or "",
        send["created_at"],
        limit,
    )
    return [row["recipient_id"] for row in rows]


async def profiles(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, recipient_ids: Sequence[str], channel: Channel
) -> dict[str, tuple[str | None, str | None]]:
    """Each recipient's profile address for ``channel`` (email → email, sms → phone, other
    channels none) and locale, in one statement; a recipient without a profile is missing."""
    column = {Channel.EMAIL: "email", Channel.SMS: "phone"}.get(channel, "NULL")
    rows = await pool.fetch(
        f"""SELECT user_id, {column} AS address, locale FROM recipient_profiles
             WHERE tenant_id = $1 AND user_id = ANY($2::text[])""",
        tenant_id,
        list(recipient_ids),
    )
    return {row["user_id"]: (row["address"], row["locale"]) for row in rows}


async def advance(
    pool: asyncpg.Pool,
    send_id: uuid.UUID,
    step: int,
    last_recipient_id: str,
    stored: int,
    skipped: int,
    *,
    done: bool,
) -> bool:
    """Record a chunk done (``done``: the last one): the send moves from ``step`` to the
    next; False when it was not at ``step`` (another worker recorded the chunk)."""
    status = await pool.execute(
        """UPDATE topic_sends SET step = step + 1, last_recipient_id = $3,
                  stored = stored + $4, skipped = skipped + $5,
                  status = CASE WHEN $6 THEN 'done' ELSE status END,
                  finished_at = CASE WHEN $6 THEN now() END
            WHERE id = $1 AND step = $2 AND status = 'fanning_out'""",
        send_id,
        step,
        last_recipient_id,
        stored,
        skipped,
        done,
    )
    return status.endswith(" 1")


async def finish(pool: asyncpg.Pool, send_id: uuid.UUID, step: int) -> None:
    """Record the walk done at ``step`` (no subscriber was left after the last chunk)."""
    await pool.execute(
        """UPDATE topic_sends SET status = 'done', finished_at = now()
            WHERE id = $1 AND step = $2 AND status = 'fanning_out'""",
        send_id,
        step,
    )
