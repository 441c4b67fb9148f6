"""Dead letters: persist every message a stage gave up on (the pipeline's dead-letter topic
and each channel's send DLQ), for the admin DLQ API, and fail the notification a letter is
about, so a client polling it learns the truth instead of seeing it pending forever.

Which notification: the letter's own ``notification_id`` (a send that failed for good; its
notification is failed already), else the ``id`` and ``tenant_id`` of the message when it
is a notification (enrich, send and intake topics) or holds one (a hold request on the held
topic). The stored letter names it too, so replaying the letter reopens it. A letter about
a status event (delivery events topic) fails nothing: the notification itself is still on
its way (a ``delivered`` coming later could not undo the ``failed``), and should its final
status be the event that was lost, the sweep (``agents/sweep.py``) finishes it.

The order of effects for a batch: one transaction stores the letters and fails their
notifications (forward only, with a delivery log row); then the ``failed`` events of the
notifications it moved are produced, marked written (the delivery events stage only fans
them out to webhooks); then the acknowledgement. Writing the status here rather than
leaving it to the delivery events stage is what keeps a ``notification.failed`` webhook
from going out for a notification delivered or cancelled meanwhile.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from typing import Any

import faust
from pydantic import ValidationError

from notifyhub.agents.kit import batches
from notifyhub.app import all_dead_letter_topics, app, emit, resources, topics
from notifyhub.cores.records import PERSISTED, event_record
from notifyhub.db import dead_letters, notifications
from notifyhub.kafka.topics import Lane, TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import DeadLetter, DeliveryEvent
from notifyhub.runtime.outages import through_outages

logger = logging.getLogger(__name__)

# Dead letters are rare and not urgent: a longer wait gathers more of them per insert.
BATCH_WAIT_SECONDS = 0.2
# A failed notification's reason quotes its letter's up to this many characters: a
# validation error can run to pages, and a client needs its first line.
MAX_REASON_CHARS = 500
# The failed event of a letter is uuid5 of the letter's id: a batch read again after a
# crash makes the same events, which the delivery log and webhook receivers take once.
FAILED_EVENT_NAMESPACE = uuid.UUID("0c6f1d2e-8d4b-4f57-a3a1-64656164206c")


def _notification_topics(names: TopicNames) -> frozenset[str]:
    """The topics whose messages are notifications (``id`` and ``tenant_id`` at the top)."""
    stages = ["intake", "enrich", *(f"send.{channel}" for channel in Channel)]
    return frozenset(names.lane(stage, lane) for stage in stages for lane in Lane)


NOTIFICATION_TOPICS = _notification_topics(topics)


def _lenient_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def notification_of(letter: DeadLetter) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The notification (id, tenant) a letter is about, when it is about one."""
    if letter.notification_id is not None and letter.tenant_id is not None:
        return letter.notification_id, letter.tenant_id
    if letter.source_topic == topics.held:
        hold = _lenient_json(letter.message)
        message = hold.get("notification") if isinstance(hold, dict) else None
    elif letter.source_topic in NOTIFICATION_TOPICS:
        message = _lenient_json(letter.message)
    else:
        return None
    if not isinstance(message, dict):
        return None
    try:
        notification_id = letter.notification_id or uuid.UUID(str(message["id"]))
        tenant_id = letter.tenant_id or uuid.UUID(str(message["tenant_id"]))
    except (KeyError, ValueError):
        return None
    return notification_id, tenant_id


def tied(letter: DeadLetter) -> DeadLetter:
    """The letter naming the notification it is about (so a replay reopens it)."""
    about = notification_of(letter)
    if about is None:
        return letter
    notification_id, tenant_id = about
    return letter.model_copy(update={"notification_id": notification_id, "tenant_id": tenant_id})


def failure_of(letter: DeadLetter) -> notifications.Failure | None:
    """The failure a tied letter makes of its notification."""
    if letter.notification_id is None or letter.tenant_id is None:
        return None
    reason = letter.reason
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[:MAX_REASON_CHARS] + "…"
    return notifications.Failure(
        uuid.uuid5(FAILED_EVENT_NAMESPACE, str(letter.id)),
        letter.notification_id,
        letter.tenant_id,
        f"dead-lettered: {reason}",
        letter.failed_at,
    )


def _parse(raw: bytes) -> DeadLetter | None:
    try:
        return DeadLetter.model_validate_json(raw)
    except ValidationError as exc:
        logger.error("skipping a malformed dead letter: %s", exc)
        return None


async def _persist(letters: list[DeadLetter]) -> list[DeliveryEvent]:
    """Store the letters and fail their notifications, in one transaction; the failed
    events of the notifications failed."""
    failures = [failure for letter in letters if (failure := failure_of(letter)) is not None]
    pool = await resources.db()
    async with pool.acquire() as conn, conn.transaction():
        await dead_letters.insert_many(conn, letters)
        return await notifications.fail_unfinished(conn, failures)


@app.agent(all_dead_letter_topics, name="dead-letters")
async def persist_dead_letters(stream: faust.StreamT[bytes]) -> None:
    async for batch in batches(stream, within=BATCH_WAIT_SECONDS):
        letters = [tied(letter) for event in batch if (letter := _parse(event.value)) is not None]
        if not letters:
            continue
        failed = await through_outages(functools.partial(_persist, letters), "persist dead letters")
        for event in failed:
            logger.warning(
                "notification %s (tenant %s) failed: %s",
                event.notification_id,
                event.tenant_id,
                event.reason,
            )
        await emit(event_record(topics.delivery_events, event, PERSISTED) for event in failed)
