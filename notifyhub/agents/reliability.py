"""How a stage survives what goes wrong with one message.

Faust acknowledges a message whose processing raised, and skips it (DESIGN.md).
So every stage catches per message and decides:

- an outage of a service we depend on (PostgreSQL, Kafka, Redis) is waited out
  with backoff, holding the partition: the message is neither lost nor skipped;
- anything else is the message's own fault (or a bug it triggers): it goes to the
  dead-letter topic with the reason, and the partition keeps flowing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import faust

from notifyhub.app import dead_letter_topic, publish
from notifyhub.model.messages import DeadLetter
from notifyhub.observability.metrics import DLQ_MESSAGES
from notifyhub.runtime.outages import through_outages

logger = logging.getLogger(__name__)


async def dead_letter(letter: DeadLetter, topic: faust.TopicT = dead_letter_topic) -> None:
    """Send a message to a dead-letter topic (retrying through outages: it must not be lost)."""
    logger.warning(
        "dead letter from %s (tenant %s, notification %s): %s",
        letter.source_topic,
        letter.tenant_id,
        letter.notification_id,
        letter.reason,
    )
    await through_outages(
        lambda: publish(topic, letter.message_key, letter.to_bytes()),
        f"dead letter {letter.id}",
    )
    DLQ_MESSAGES.labels(channel=letter.channel.value if letter.channel else "").inc()


# How long a stopping worker waits for a batch in flight (sends, then their outcomes).
# Above the provider timeout, below the StatefulSet's termination grace period.
STOP_GRACE_SECONDS = 30.0


async def to_completion(work: Awaitable[None], what: str) -> None:
    """Run ``work`` to its end even when the agent is cancelled because the worker stops.

    Faust cancels agents on SIGTERM. Cancelled mid-batch, sends that reached the provider
    would have no recorded outcome, and the batch would be sent again after the restart.
    So the cancellation waits for the batch (at most ``STOP_GRACE_SECONDS``), then goes on.
    """
    task = asyncio.ensure_future(work)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            logger.info("stopping: letting the %s finish first", what)
            await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
        raise


def letter_for(event: faust.EventT[bytes], reason: str, **details: Any) -> DeadLetter:
    """A dead letter holding the event's own key and bytes, so a replay sends it as it was."""
    return DeadLetter(
        source_topic=event.message.topic,
        reason=reason,
        message_key=event.key,
        message=event.value or b"",
        **details,
    )
