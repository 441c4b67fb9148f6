"""Held: keep notifications until their time, then release them; one mechanism for
``scheduled_at``, quiet hours, send retries, webhook retries, digest windows and
escalation steps (``agents.workflows`` stores what those two release).

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
import uuid
from collections.abc import Sequence
from typing import cast

import faust
from pydantic import ValidationError

from notifyhub.agents import workflows
from notifyhub.agents.kit import batches, dead_letters, guarded
from notifyhub.agents.reliability import letter_for
from notifyhub.app import app, emit, enqueue, held_topic, topics
from notifyhub.cores.digests import digested_event
from notifyhub.cores.escalations import chain_event
from notifyhub.cores.records import Outgoing, event_record
from notifyhub.kafka.faust_app import at_event
from notifyhub.model.messages import (
    DeadLetter,
    Destination,
    HeldMessage,
    HoldRequest,
    Notification,
    Seen,
)
from notifyhub.observability import tracing
from notifyhub.runtime import clock
from notifyhub.tables.held import Released, held_table

logger = logging.getLogger(__name__)

# How late a held notification may be released at most (plus the pipeline's latency).
TICK_SECONDS = 1.0
TICK_KEY = b"tick"


def _released(released: Released) -> Outgoing:
    headers = tuple(tracing.as_headers(released.trace).items())
    if released.webhook is not None:
        delivery = released.webhook
        return Outgoing(topics.webhooks_outbound, delivery.endpoint_key, delivery.to_bytes(), headers)
    if released.receipt is not None:
        receipt = released.receipt
        return Outgoing(topics.receipts, receipt.key, receipt.to_bytes(), headers)
    notification = released.notification
    assert notification is not None  # a hold carries one or the other
    destination = (
        topics.enrich(notification.priority)
        if released.destination is Destination.ENRICH
        else topics.send(notification.channel, notification.priority)
    )
    return Outgoing(destination, notification.recipient_key, notification.to_bytes(), headers)


async def _handle(events: Sequence[faust.EventT[bytes]]) -> None:
    records: list[Outgoing] = []
    letters: list[DeadLetter] = []
    # Released digest windows and escalation steps: new notifications, stored together.
    windows: list[Released] = []
    steps: list[Released] = []
    with tracing.batch_spans(events, "held") as traces:
        for event, trace in zip(events, traces, strict=True):
            try:
                message = HeldMessage.validate_json(event.value)
            except ValidationError as exc:
                letters.append(letter_for(event, f"invalid held message: {exc}"))
                continue
            now = clock.now()
            # Faust types a key loosely; the held topic's are the recipients' (raw bytes).
            key = cast(bytes, event.key)
            with at_event(event):
                if isinstance(message, HoldRequest):
                    # The request's trace is kept with it, for what is released later.
                    kept = {k: v.decode("latin-1") for k, v in tracing.passed_on(event.headers, trace)}
                    if message.destination is Destination.DIGEST:
                        records.append(
                            _digested(message, held_table.collect(key, message, now, kept), now)
                        )
                    else:
                        held_table.hold(key, message, now, kept)
                    continue
                if isinstance(message, Seen):
                    stopped = held_table.stop_escalations(key, set(message.notification_ids), now)
                    records += [_stopped(notification, now) for notification in stopped]
                    continue
                partition, offset = event.message.partition, event.message.offset
                for released in held_table.release_due(partition, now, offset):
                    if released.notification is not None:
                        logger.info(
                            "releasing held notification %s to %s (partition %d, offset %d)",
                            released.notification.id,
                            released.destination,
                            partition,
                            offset,
                        )
                    if released.destination is Destination.DIGEST:
                        windows.append(released)
                    elif released.destination is Destination.ESCALATE:
                        steps.append(released)
                    else:
                        records.append(_released(released))
    if windows or steps:
        records += await workflows.released(windows, steps, clock.now())
    await dead_letters(letters)
    await emit(records)


def _digested(request: HoldRequest, digest: uuid.UUID, now: float) -> Outgoing:
    """The item's ``digested`` status, for the delivery events stage to write."""
    assert request.notification is not None
    event = digested_event(request.notification, digest, now)
    return event_record(topics.delivery_events, event)


def _stopped(notification: Notification, now: float) -> Outgoing:
    event = chain_event(notification, "escalation_stopped", "seen or read before the next step", now)
    return event_record(topics.delivery_events, event)


@app.agent(held_topic, name="held")
async def held(stream: faust.StreamT[bytes]) -> None:
    async for events in batches(stream):
        await guarded(events, _handle, "held")


# Faust hides App.timer from mypy (no_type_check), so its decorator is untyped.
@app.timer(TICK_SECONDS)  # type: ignore[untyped-decorator]
async def tick_held_partitions() -> None:
    """Time flows into the held stage as messages: one tick per owned held partition."""
    name = held_topic.get_topic_name()
    for tp in app.assignor.assigned_actives():
        if tp.topic == name:
            await enqueue(held_topic, TICK_KEY, b'{"v":1,"kind":"tick"}', partition=tp.partition)


@app.on_rebalance_complete.connect
async def _rescan_after_rebalance(sender: object, /, *args: object, **kwargs: object) -> None:
    held_table.forget_partitions()
