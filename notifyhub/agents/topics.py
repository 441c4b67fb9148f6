"""Topic fan-out: a send to a topic reaches each of its subscribers, one chunk at a time.

The HTTP API stores the send (``topic_sends``) and produces one ``TopicFanout`` record for
its step 0. Each record is one step of the walk: the next ``CHUNK_SIZE`` subscribers after
the last one done (keyset order by recipient id), their profiles when the channel needs an
address or the template a locale (one statement), their notifications stored in one
statement (``store_accepted``, as intake stores), then passed on to enrich like any other,
with the record for the next step. Preferences, quiet hours and frequency caps apply per
subscriber in enrich.

Order of effects, per step: PostgreSQL (the chunk's notifications), then the records
produced *and acknowledged by Kafka* (the chunk's, and the next step's), then the step
recorded in the send's row, then the acknowledgement. Recording the step after Kafka has
the next record is what makes the walk resumable: a worker that dies before recording it
leaves the record unacknowledged; read again, it does the chunk again (the ids are derived
from the send and the recipient, so nothing is stored twice, and what is not final yet is
passed on again, as intake does), and a step record that finds the send past its step (a
copy) is dropped. A send's steps share its key, so they are handled one after the other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import asyncpg
import faust

from notifyhub.agents.kit import batches, dead_letters, guarded, parsed
from notifyhub.app import app, publish_all, resources, settings, topic_fanout_topic, topics
from notifyhub.cores.entry import entry_event
from notifyhub.cores.intake import as_notification
from notifyhub.cores.topics import TopicFanout, TopicSend, chunk_of, chunk_records, next_step
from notifyhub.db import notifications
from notifyhub.db import topics as topic_rows
from notifyhub.model.channels import Channel
from notifyhub.model.messages import ADDRESSED_CHANNELS
from notifyhub.observability.metrics import NOTIFICATIONS_ENQUEUED
from notifyhub.runtime import clock
from notifyhub.runtime.outages import through_outages

logger = logging.getLogger(__name__)

# Subscribers per step: a chunk's notifications are one INSERT and one hand-over to the
# producer, like a batch of intake's; bigger chunks buy little and hold the partition longer.
CHUNK_SIZE = 1000
# How long a step waits for Kafka to acknowledge its records before trying again.
PUBLISH_TIMEOUT_SECONDS = 30.0


def _send_of(row: asyncpg.Record) -> TopicSend:
    return TopicSend(
        id=row["id"],
        tenant_id=row["tenant_id"],
        channel=Channel(row["channel"]),
        type=row["type"],
        template_id=str(row["template_id"]) if row["template_id"] else None,
        payload=topic_rows.decoded_payload(row),
        priority=row["priority"],
        locale=row["locale"],
    )


async def _walk(fanout: TopicFanout) -> None:
    """Do the step ``fanout`` names, unless the send is past it or gone."""
    pool = await resources.db()
    where = f"topic send {fanout.topic_send_id} (tenant {fanout.tenant_id}) step {fanout.step}"
    row = await through_outages(
        lambda: topic_rows.send_for_fanout(pool, fanout.tenant_id, fanout.topic_send_id),
        f"{where}: read the send",
    )
    if row is None or row["status"] == "done" or row["step"] != fanout.step:
        logger.info("%s: the send is gone, done or past this step; nothing to do", where)
        return
    recipient_ids = await through_outages(
        lambda: topic_rows.next_subscribers(pool, row, CHUNK_SIZE), f"{where}: read subscribers"
    )
    if not recipient_ids:
        await through_outages(
            lambda: topic_rows.finish(pool, fanout.topic_send_id, fanout.step), f"{where}: finish"
        )
        return
    send = _send_of(row)
    profiles: dict[str, tuple[str | None, str | None]] = {}
    if send.channel in ADDRESSED_CHANNELS or (send.template_id and not send.locale):
        profiles = await through_outages(
            lambda: topic_rows.profiles(pool, send.tenant_id, recipient_ids, send.channel),
            f"{where}: read profiles",
        )
    chunk = chunk_of(send, recipient_ids, profiles)
    now = clock.now()
    entries = [(n, entry_event(n, now)) for n in map(as_notification, chunk.messages)]
    passed: dict[uuid.UUID, bool] = {}
    if chunk.messages:
        passed = await through_outages(
            lambda: notifications.store_accepted(
                pool, [e for _, e in entries], chunk.messages, settings.idempotency_retention_seconds
            ),
            f"{where}: store {len(chunk.messages)} notifications",
        )
    last = len(recipient_ids) < CHUNK_SIZE
    records = chunk_records(topics, passed, entries)
    if not last:
        records.append(next_step(fanout, topics.topic_fanout))
    await through_outages(
        lambda: publish_all(records, PUBLISH_TIMEOUT_SECONDS), f"{where}: produce {len(records)} records"
    )
    recorded = await through_outages(
        lambda: topic_rows.advance(
            pool,
            fanout.topic_send_id,
            fanout.step,
            recipient_ids[-1],
            len(chunk.messages),
            len(chunk.unaddressed),
            done=last,
        ),
        f"{where}: record the step",
    )
    if not recorded:
        logger.info("%s: another worker recorded this step first", where)
    NOTIFICATIONS_ENQUEUED.labels(channel=send.channel.value).inc(sum(passed.values()))
    if chunk.unaddressed:
        logger.info(
            "%s: %d subscribers have no %s address in their profile; not sent",
            where,
            len(chunk.unaddressed),
            send.channel,
        )


async def _step(events: Sequence[faust.EventT[bytes]]) -> None:
    steps, letters = parsed(events, TopicFanout, "topic fan-out step")
    await dead_letters(letters)
    for _, fanout in steps:
        await _walk(fanout)


@app.agent(topic_fanout_topic, name="topic-fanout")
async def topic_fanout(stream: faust.StreamT[bytes]) -> None:
    async for events in batches(stream):
        await guarded(events, _step, "topic fan-out")
