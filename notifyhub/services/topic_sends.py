"""Starting a send to a topic's subscribers: stored, then announced to the fan-out stage.

The send is stored first (its row lists what to send), then its first fan-out record goes
to Kafka. If Kafka does not take it, the row is deleted again and the caller is told
(``QueueUnavailable``): a send is never left stored with nothing to carry it out.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import asyncpg

from notifyhub.cores.records import Outgoing
from notifyhub.cores.topics import TopicFanout
from notifyhub.db import topics as topic_rows
from notifyhub.kafka.topics import TopicNames
from notifyhub.services.publishing import PUBLISH_WITHIN_SECONDS, Publish, QueueUnavailable

logger = logging.getLogger(__name__)


async def start_send(
    pool: asyncpg.Pool,
    publish: Publish,
    topics: TopicNames,
    tenant_id: uuid.UUID,
    key: str,
    fields: dict[str, Any],
) -> asyncpg.Record | None:
    """The stored send, on its way; ``None`` when the tenant has no topic ``key``."""
    row = await topic_rows.create_send(pool, tenant_id, key, fields)
    if row is None:
        return None
    first = TopicFanout(topic_send_id=row["id"], tenant_id=tenant_id)
    try:
        await publish(
            [Outgoing(topics.topic_fanout, first.key, first.to_bytes())], PUBLISH_WITHIN_SECONDS
        )
    except Exception:
        logger.exception("topic send %s (tenant %s) refused: Kafka unavailable", row["id"], tenant_id)
        await topic_rows.forget_send(pool, row["id"])
        raise QueueUnavailable from None
    return row
