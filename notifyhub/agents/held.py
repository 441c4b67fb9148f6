"""Held: keep notifications until their time, then release them; one mechanism for
``scheduled_at``, quiet hours, send retries and webhook retries.

Requests arrive on the held topic keyed by recipient; a timer on every worker sends a
tick into each held partition it owns, and the agent consuming that partition releases
what is due. The table is written only from the agent (never from the timer), so it is
durable through the changelog: it survives restarts and moves with its partition.
A released notification goes back through enrich (preferences, quiet hours and caps are
decided at send time), or to its channel's sender. Cancel needs nothing here: the send
stage will not claim a cancelled notification.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import faust
from pydantic import ValidationError

from notifyhub import clock, tracing
from notifyhub.agents.kit import batches, dead_letters, guarded
from notifyhub.agents.reliability import letter_for
from notifyhub.app import app, emit, enqueue, held_topic, topics
from notifyhub.cores.records import Outgoing
from notifyhub.faust_app import at_event
from notifyhub.messages import DeadLetter, HeldMessage, HoldRequest
from notifyhub.tables.held import Released, forget_partitions, hold, release_due

logger = logging.getLogger(__name__)

# How late a held notification may be released at most (plus the pipeline's latency).
TICK_SECONDS = 1.0
TICK_KEY = b"tick"


def _released(released: Released) -> Outgoing:
    headers = tuple(tracing.as_headers(released.trace).items())
    if released.webhook is not None:
        delivery = released.webhook
        return Outgoing(topics.webhooks_outbound, delivery.endpoint_key, delivery.to_bytes(), headers)
    notification = released.notification
    assert notification is not None  # a hold carries one or the other
    destination = (
        topics.enrich(notification.priority)
        if released.destination == "enrich"
        else topics.send(notification.channel, notification.priority)
    )
    return Outgoing(destination, notification.recipient_key, notification.to_bytes(), headers)


async def _handle(events: Sequence[faust.EventT]) -> None:
    records: list[Outgoing] = []
    letters: list[DeadLetter] = []
    with tracing.batch_spans(events, "held") as traces:
        for event, trace in zip(events, traces, strict=True):
            try:
                message = HeldMessage.validate_json(event.value)
            except ValidationError as exc:
                letters.append(letter_for(event, f"invalid held message: {exc}"))
                continue
            with at_event(event):
                if isinstance(message, HoldRequest):
                    # The request's trace is kept with it, for what is released later.
                    kept = {k: v.decode("latin-1") for k, v in tracing.passed_on(event.headers, trace)}
                    hold(event.key, message, clock.now(), kept)
                    continue
                partition, offset = event.message.partition, event.message.offset
                for released in release_due(partition, clock.now(), offset):
                    if released.notification is not None:
                        logger.info(
                            "releasing held notification %s to %s (partition %d, offset %d)",
                            released.notification.id,
                            released.destination,
                            partition,
                            offset,
                        )
                    records.append(_released(released))
    await dead_letters(letters)
    await emit(records)


@app.agent(held_topic, name="held")
async def held(stream: faust.StreamT) -> None:
    async for events in batches(stream):
        await guarded(events, _handle, "held")


@app.timer(TICK_SECONDS)
async def tick_held_partitions() -> None:
    """Time flows into the held stage as messages: one tick per owned held partition."""
    name = held_topic.get_topic_name()
    for tp in app.assignor.assigned_actives():
        if tp.topic == name:
            await enqueue(held_topic, TICK_KEY, b'{"v":1,"kind":"tick"}', partition=tp.partition)


@app.on_rebalance_complete.connect
async def _rescan_after_rebalance(sender: object, **kwargs: object) -> None:
    forget_partitions()
