"""The in-app inbox: messages the in-app provider stores, per tenant and recipient."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from notifyhub.db import returned_row
from notifyhub.model.messages import Notification

INBOX_COLUMNS = (
    "id, tenant_id, notification_id, recipient_id, title, body, payload, read_at, seen_at, "
    "archived_at, created_at"
)


async def store_message(pool: asyncpg.Pool, notification: Notification) -> tuple[dict[str, Any], bool]:
    """Store the notification's inbox message: the message, and whether it is new.

    A notification sent twice (a redelivery after a crash) finds its message stored and
    stores nothing more.
    """
    [stored] = await store_messages(pool, [notification])
    return stored


async def store_messages(
    pool: asyncpg.Pool, notifications: Sequence[Notification]
) -> list[tuple[dict[str, Any], bool]]:
    """``store_message`` for a batch, in one statement: each notification's message, and
    whether it is new, in the notifications' order."""
    rows = await pool.fetch(
        f"""WITH given AS (
               SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
                                    $6::text[], $7::text[], $8::boolean[])
                   AS g (id, tenant_id, notification_id, recipient_id, title, body, payload,
                         escalates)),
           inserted AS (
               INSERT INTO inbox_messages (id, tenant_id, notification_id, recipient_id, title,
                   body, payload, escalates)
               SELECT id, tenant_id, notification_id, recipient_id, title, body, payload::jsonb,
                      escalates
                 FROM given
               ON CONFLICT (tenant_id, notification_id) DO NOTHING
               RETURNING {INBOX_COLUMNS}, true AS new)
           SELECT * FROM inserted
           UNION ALL
           SELECT {", ".join(f"m.{c.strip()}" for c in INBOX_COLUMNS.split(","))}, false AS new
             FROM inbox_messages m JOIN given g
               ON m.tenant_id = g.tenant_id AND m.notification_id = g.notification_id
            WHERE m.id <> g.id""",
        [uuid.uuid4() for _ in notifications],
        [n.tenant_id for n in notifications],
        [n.id for n in notifications],
        [n.recipient_id for n in notifications],
        [n.subject for n in notifications],
        [n.body or "" for n in notifications],
        [json.dumps(n.payload) for n in notifications],
        [bool(n.escalate) for n in notifications],
    )
    by_notification = {(row["tenant_id"], row["notification_id"]): row for row in rows}
    stored = []
    for notification in notifications:
        row = by_notification[(notification.tenant_id, notification.id)]
        message = message_json(row)
        del message["new"]
        stored.append((message, row["new"]))
    return stored


def message_json(message: asyncpg.Record) -> dict[str, Any]:
    """An inbox message as the API and the WebSocket send it (payload decoded)."""
    found = dict(message)
    found["payload"] = json.loads(message["payload"])
    return found


# The states a message can be marked with, each with its timestamp column.
STATE_COLUMNS = {"read": "read_at", "seen": "seen_at", "archived": "archived_at"}


@dataclass(frozen=True)
class InboxFilter:
    """Which of a recipient's messages a listing shows (None: either way)."""

    unread: bool | None = None
    unseen: bool | None = None
    archived: bool | None = False


def _where(filters: InboxFilter) -> str:
    clauses = ["tenant_id = $1", "recipient_id = $2"]
    for wanted, column in (
        (filters.unread, "read_at"),
        (filters.unseen, "seen_at"),
    ):
        if wanted is not None:
            clauses.append(f"{column} IS {'NULL' if wanted else 'NOT NULL'}")
    if filters.archived is not None:
        clauses.append(f"archived_at IS {'NOT NULL' if filters.archived else 'NULL'}")
    return " AND ".join(clauses)


async def _cursor(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, recipient_id: str, message_id: uuid.UUID
) -> asyncpg.Record | None:
    """Where a message sits in the recipient's inbox order (None: not the recipient's)."""
    return await pool.fetchrow(
        "SELECT created_at, id FROM inbox_messages "
        "WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3",
        tenant_id,
        recipient_id,
        message_id,
    )


async def page(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    recipient_id: str,
    filters: InboxFilter,
    *,
    limit: int,
    after_id: uuid.UUID | None = None,
    offset: int = 0,
) -> list[asyncpg.Record] | None:
    """The recipient's messages, newest first. ``after_id`` is a keyset cursor: the messages
    older than that one (None when the cursor is not one of the recipient's messages)."""
    where = _where(filters)
    args: list[object] = [tenant_id, recipient_id, limit]
    if after_id is not None:
        cursor = await _cursor(pool, tenant_id, recipient_id, after_id)
        if cursor is None:
            return None
        where += " AND (created_at, id) < ($4, $5)"
        args += [cursor["created_at"], cursor["id"]]
        offset = 0
    rows = await pool.fetch(
        f"SELECT {INBOX_COLUMNS} FROM inbox_messages WHERE {where} "
        f"ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET {int(offset)}",
        *args,
    )
    return list(rows)


async def since(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, recipient_id: str, message_id: uuid.UUID, limit: int
) -> list[asyncpg.Record] | None:
    """The messages after ``message_id``, oldest first (None when it is not the recipient's)."""
    cursor = await _cursor(pool, tenant_id, recipient_id, message_id)
    if cursor is None:
        return None
    rows = await pool.fetch(
        f"SELECT {INBOX_COLUMNS} FROM inbox_messages "
        "WHERE tenant_id = $1 AND recipient_id = $2 AND (created_at, id) > ($3, $4) "
        "ORDER BY created_at, id LIMIT $5",
        tenant_id,
        recipient_id,
        cursor["created_at"],
        cursor["id"],
        limit,
    )
    return list(rows)


async def counts(pool: asyncpg.Pool, tenant_id: uuid.UUID, recipient_id: str) -> dict[str, int]:
    """Unread, unseen (both among messages not archived), archived and total."""
    row = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE read_at IS NULL AND archived_at IS NULL) AS unread,
                  count(*) FILTER (WHERE seen_at IS NULL AND archived_at IS NULL) AS unseen,
                  count(*) FILTER (WHERE archived_at IS NOT NULL) AS archived,
                  count(*) AS total
             FROM inbox_messages WHERE tenant_id = $1 AND recipient_id = $2""",
        tenant_id,
        recipient_id,
    )
    return dict(returned_row(row))  # an aggregate without GROUP BY: always one row


async def mark(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    recipient_id: str,
    state: str,
    message_id: uuid.UUID | None,
    *,
    on: bool = True,
) -> Marked:
    """Set (or clear) a state on one message, or on all the recipient's messages without it.

    The first time counts: marking a read message read keeps its ``read_at``. Returns how
    many messages matched (0 for an unknown id), and the notifications of those that
    escalate (their escalation stops when they are seen or read)."""
    column = STATE_COLUMNS[state]
    value = f"COALESCE({column}, now())" if on else "NULL"
    if message_id is None:
        update = (
            f"UPDATE inbox_messages SET {column} = now() "
            f"WHERE tenant_id = $1 AND recipient_id = $2 AND {column} IS NULL AND archived_at IS NULL"
        )
        arguments: tuple[object, ...] = (tenant_id, recipient_id)
    else:
        update = (
            f"UPDATE inbox_messages SET {column} = {value} "
            "WHERE tenant_id = $1 AND recipient_id = $2 AND id = $3"
        )
        arguments = (tenant_id, recipient_id, message_id)
    row = await pool.fetchrow(
        f"""WITH marked AS ({update} RETURNING notification_id, escalates)
            SELECT count(*) AS matched,
                   coalesce(array_agg(notification_id) FILTER (WHERE escalates), '{{}}') AS escalating
              FROM marked""",
        *arguments,
    )
    marked = returned_row(row)  # an aggregate without GROUP BY: always one row
    return Marked(marked["matched"], list(marked["escalating"]))


@dataclass(frozen=True)
class Marked:
    matched: int
    # Notifications among them whose escalation stops when they are seen or read.
    escalating: list[uuid.UUID]


async def seen_or_read(
    pool: asyncpg.Pool, wanted: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> set[uuid.UUID]:
    """Of these in-app notifications (tenant, notification id), those whose message was
    seen or read."""
    rows = await pool.fetch(
        """SELECT m.notification_id FROM inbox_messages m
             JOIN unnest($1::uuid[], $2::uuid[]) AS w (t, n)
               ON m.tenant_id = w.t AND m.notification_id = w.n
            WHERE m.seen_at IS NOT NULL OR m.read_at IS NOT NULL""",
        [tenant for tenant, _ in wanted],
        [notification for _, notification in wanted],
    )
    return {row["notification_id"] for row in rows}
