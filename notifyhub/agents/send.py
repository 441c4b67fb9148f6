"""Send: one agent per channel and lane hands notifications to the channel's providers and
turns each outcome into status events, a retry or a dead letter (``cores.send``).

Messages are taken in batches. The batch is claimed in one statement (only notifications
that are not final are claimed: a cancelled one, or a redelivered one that was sent, is
not sent). A provider that takes batches (the sink, the in-app inbox) gets the batch in
one call, in order; the others get one notification at a time, with up to the channel's
concurrency in flight (NotifyHub's worker pools: email 5, push 3, sms 2, in-app 5), one
recipient's notifications one after the other and in order. The batch's offsets are
acknowledged only after every send in it has finished, so concurrency never commits past
a send still in flight (faust-streaming issue 606 is why agents themselves run with
concurrency 1).

The order of side effects, and why:
1. provider calls (``notifyhub.delivery``: failover, breakers, rate limits);
2. the outcomes written to PostgreSQL in one statement (status and delivery log), so a
   message replayed after a crash or a rebalance finds its notification final and is not
   sent again; before them, the numbers Twilio says opted out (21610) are suppressed for
   every tenant, so a replay finds them suppressed;
3. delivery events (marked as written already), retry holds and dead letters produced;
4. offsets committed by Faust after it has flushed the producer.

A temporary failure does not block the partition: the notification goes to the held
stage with a release time and comes back to this stage for its next attempt.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import faust
from mode import Service
from opentelemetry.trace import Span

from notifyhub.agents.kit import batches, dead_letters, guarded, parsed
from notifyhub.agents.reliability import to_completion
from notifyhub.app import (
    app,
    emit,
    lane_agents,
    resources,
    send_dead_letter_topics,
    send_topics,
    settings,
    topics,
)
from notifyhub.cores.records import PERSISTED, Headers, Outgoing, event_record
from notifyhub.cores.send import RetryPolicy, consequences
from notifyhub.db import notifications, suppressions
from notifyhub.delivery.dispatch import Dispatcher
from notifyhub.delivery.from_settings import Dispatchers
from notifyhub.model.channels import Channel
from notifyhub.model.messages import DeliveryEvent, Notification
from notifyhub.model.outcomes import Outcome, Result
from notifyhub.model.status import Status
from notifyhub.observability import tracing
from notifyhub.observability.metrics import SEND_RETRIES
from notifyhub.runtime import clock
from notifyhub.runtime.outages import through_outages

logger = logging.getLogger(__name__)

dispatchers = Dispatchers(settings, resources)

# A number Twilio refused with 21610 texted STOP to our sender without our hearing of it.
OPTED_OUT_REASON = "opted out at Twilio (error 21610)"

RETRY_POLICY = RetryPolicy(
    settings.send_max_attempts, settings.retry_base_seconds, settings.retry_max_seconds
)

Traced = tuple[Notification, Headers, Span | None]


async def _claimed(batch: Sequence[Traced]) -> tuple[list[Traced], list[Outgoing]]:
    """The batch's notifications this stage may send: claimed now, each once; and the
    delivery events of those the claim dropped (tenant deactivated, address suppressed),
    written already, for webhooks.

    A notification can be in a batch twice (an earlier stage's message replayed after a
    rebalance); the claim is per notification, so only its first copy is kept.
    """
    unique: dict[uuid.UUID, Traced] = {}
    for item in batch:
        unique.setdefault(item[0].id, item)
    pool = await resources.db()
    ids, dropped = await notifications.claim_many_for_sending(
        pool, [(n.id, n.tenant_id) for n, _, _ in unique.values()]
    )
    reports = []
    for drop in dropped:
        notification, headers, _ = unique[drop.notification_id]
        logger.info("notification %s dropped before sending: %s", notification.id, drop.reason)
        event = DeliveryEvent.about(
            notification,
            Status.DROPPED,
            event_id=drop.event_id,
            reason=drop.reason,
            occurred_at=drop.occurred_at,
        )
        reports.append(event_record(topics.delivery_events, event, headers + PERSISTED))
    dropped_ids = {drop.notification_id for drop in dropped}
    for notification, _, _ in unique.values():
        if notification.id not in ids and notification.id not in dropped_ids:
            logger.info(
                "notification %s is final already (cancelled or sent); not sending", notification.id
            )
    return [item for item in unique.values() if item[0].id in ids], reports


async def _deliver(dispatcher: Dispatcher, notification: Notification) -> Outcome:
    try:
        return await dispatcher.deliver(notification)
    except Exception as exc:
        # A bug, not a provider's answer: the notification fails with the reason and its
        # message goes to the channel's dead-letter topic, to be replayed once fixed.
        logger.exception("send of notification %s failed", notification.id)
        return Outcome(Result.FAILED, reason=f"internal error in send: {exc!r}")


async def _deliver_in_order(
    dispatcher: Dispatcher, queue: Sequence[Traced], slots: asyncio.Semaphore
) -> list[Outcome]:
    """One recipient's notifications, one after the other; the outcome of each, each in a
    span of its record's trace when spans are recorded."""
    outcomes = []
    for notification, _, span in queue:
        async with slots:
            with tracing.inside(span, **_about(notification)):
                outcomes.append(await _deliver(dispatcher, notification))
    return outcomes


def _about(notification: Notification) -> dict[str, object]:
    return {"stage": "send", "tenant_id": notification.tenant_id, "notification_id": notification.id}


async def _delivered(
    channel: Channel, claimed: Sequence[Traced], slots: asyncio.Semaphore
) -> list[Outcome]:
    """Each claimed notification's outcome, in the batch's order."""
    dispatcher = dispatchers[channel]
    notifications_ = [n for n, _, _ in claimed]
    try:
        together = await dispatcher.deliver_many(notifications_, [span for _, _, span in claimed])
    except Exception as exc:
        logger.exception("a %s batch send failed", channel)
        together = [Outcome(Result.FAILED, reason=f"internal error in send: {exc!r}")] * len(claimed)
    if together is not None:
        return together
    per_recipient: dict[bytes, list[int]] = defaultdict(list)
    for index, (notification, _, _) in enumerate(claimed):
        per_recipient[notification.recipient_key].append(index)
    queues = list(per_recipient.values())
    done = await asyncio.gather(
        *(_deliver_in_order(dispatcher, [claimed[i] for i in queue], slots) for queue in queues)
    )
    outcomes: list[Outcome | None] = [None] * len(claimed)
    for queue, queue_outcomes in zip(queues, done, strict=True):
        for index, outcome in zip(queue, queue_outcomes, strict=True):
            outcomes[index] = outcome
    return [o for o in outcomes if o is not None]


async def _send_batch(
    channel: Channel, slots: asyncio.Semaphore, events: Sequence[faust.EventT[bytes]]
) -> None:
    with tracing.batch_spans(events, "send") as traces:
        trace_of = dict(zip(events, traces, strict=True))
        good, letters = parsed(events, Notification, "send message", channel=channel)
        await dead_letters(letters)
        if not good:
            return
        batch = [(n, tracing.passed_on(e.headers, trace_of[e]), trace_of[e]) for e, n in good]
        claimed, dropped = await through_outages(lambda: _claimed(batch), f"claim {len(batch)}")
        await emit(dropped)
        outcomes = await _delivered(channel, claimed, slots)
        for (notification, _, span), outcome in zip(claimed, outcomes, strict=True):
            tracing.annotate(
                span,
                **{
                    "notifyhub.notification_id": notification.id,
                    "notifyhub.tenant_id": notification.tenant_id,
                    "notifyhub.channel": channel.value,
                    "notifyhub.attempt": notification.attempt,
                    "notifyhub.result": outcome.result.value,
                },
            )
            if logger.isEnabledFor(logging.DEBUG):
                with tracing.inside(span, **_about(notification)):
                    logger.debug("send: %s through %s", outcome.result.value, outcome.provider)
        done = consequences(
            [(n, outcome, headers) for (n, headers, _), outcome in zip(claimed, outcomes, strict=True)],
            RETRY_POLICY,
            clock.now(),
            topics,
        )
        events_out = [event for event, _ in done.events]
        pool = await resources.db()
        if done.opted_out:
            opted_out = [
                suppressions.Suppression(None, channel, number, OPTED_OUT_REASON, "sms-stop")
                for number in done.opted_out
            ]
            await through_outages(
                lambda: suppressions.add_many(pool, opted_out),
                f"suppress {len(opted_out)} opted-out numbers",
            )
        await through_outages(
            lambda: notifications.record_events(pool, events_out),
            f"record {len(events_out)} outcomes",
        )
        if done.holds:
            SEND_RETRIES.labels(channel=channel.value).inc(len(done.holds))
        await emit(
            [
                event_record(topics.delivery_events, event, headers + PERSISTED)
                for event, headers in done.events
            ]
            + done.holds
            + done.escalations
        )
        await dead_letters(done.letters, send_dead_letter_topics[channel])


def _sender(channel: Channel) -> Callable[[faust.StreamT[bytes]], Coroutine[Any, Any, None]]:
    async def send(stream: faust.StreamT[bytes]) -> None:
        slots = asyncio.Semaphore(settings.send_concurrency[channel])
        async for events in batches(stream):
            # A worker told to stop lets the batch's sends finish and records them first.
            # A bug dead-letters the whole batch: sending it again one by one could repeat
            # sends that providers accepted.
            await to_completion(
                guarded(
                    events,
                    lambda batch: _send_batch(channel, slots, batch),
                    f"{channel} send",
                    isolate=False,
                    topic=send_dead_letter_topics[channel],
                    channel=channel,
                ),
                f"{channel} send batch",
            )

    send.__name__ = f"send_{channel}"
    return send


senders = {
    channel: lane_agents(send_topics[channel], f"send-{channel}")(_sender(channel))
    for channel in Channel
}


@app.service
class ProviderConnections(Service):
    """Closes the providers' clients when the worker stops."""

    async def on_stop(self) -> None:
        await dispatchers.close()
