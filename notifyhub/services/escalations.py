"""Telling the held stage that escalating in-app messages were seen or read.

Their waiting escalation steps are then dropped at once. Best effort: a step released later
checks PostgreSQL again before it is sent, so a signal lost here only keeps a step waiting
until its time.
"""

from __future__ import annotations

import logging
import uuid

from notifyhub.cores.records import Outgoing
from notifyhub.db.inbox import Marked
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import Seen
from notifyhub.services.publishing import Publish

logger = logging.getLogger(__name__)

# The signal is an optimisation: a mark answers without waiting longer than this for it.
SEEN_WITHIN_SECONDS = 5.0


async def stop_escalations(
    publish: Publish, topics: TopicNames, tenant_id: uuid.UUID, recipient: str, marked: Marked
) -> None:
    """Send the held stage a ``Seen`` for the escalating messages just marked, if any."""
    if not marked.escalating:
        return
    seen = Seen(tenant_id=tenant_id, recipient_id=recipient, notification_ids=marked.escalating)
    try:
        await publish([Outgoing(topics.held, seen.recipient_key, seen.to_bytes())], SEEN_WITHIN_SECONDS)
    except Exception:
        logger.warning("could not tell the held stage that %s saw %s", recipient, marked.escalating)
