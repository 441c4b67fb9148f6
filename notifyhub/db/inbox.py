"""The in-app inbox: messages the in-app provider stores, per tenant and recipient."""

from __future__ import annotations

import json
import uuid

import asyncpg

from notifyhub.messages import Notification


async def store_message(pool: asyncpg.Pool, notification: Notification) -> uuid.UUID:
    """Store the notification's inbox message; the id of the one message per notification.

    A notification sent twice (a redelivery after a crash) finds its message stored and
    stores nothing more.
    """
    row = await pool.fetchrow(
        """WITH inserted AS (
               INSERT INTO inbox_messages (id, tenant_id, notification_id, recipient_id, title, body,
                   payload)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
               ON CONFLICT (tenant_id, notification_id) DO NOTHING
               RETURNING id)
           SELECT id FROM inserted
           UNION ALL
           SELECT id FROM inbox_messages WHERE tenant_id = $2 AND notification_id = $3
           LIMIT 1""",
        uuid.uuid4(),
        notification.tenant_id,
        notification.id,
        notification.recipient_id,
        notification.subject,
        notification.body or "",
        json.dumps(notification.payload),
    )
    return row["id"]
