"""Send: one agent per channel and lane hands notifications to the channel's providers and
turns each outcome into status events, a retry or a dead letter.

Messages are taken in batches. The batch is claimed in one statement (only notifications
that are not final are claimed: a cancelled one, or a redelivered one that was sent, is
not sent), then delivered with up to the channel's concurrency in flight (NotifyHub's
worker pools: email 5, push 3, sms 2, in-app 5), one recipient's notifications one after
the other and in order. The batch's offsets are acknowledged only after every send in it
has finished, so concurrency never commits past a send still in flight (faust-streaming
issue 606 is why agents themselves run with concurrency 1).

The order of side effects, and why:
1. provider calls (``notifyhub.delivery``: failover, breakers, rate limits);
2. the outcomes written to PostgreSQL in one statement, so a message replayed after a
   crash or a rebalance finds its notification final and is not sent again;
3. delivery events, retry holds and dead letters produced;
4. offsets committed by Faust after it has flushed the producer.

A temporary failure does not block the partition: the notification goes to the held
stage with a release time (exponential backoff with jitter) and comes back to this
stage for its next attempt; after ``NOTIFYHUB_SEND_MAX_ATTEMPTS``, or at once for a
permanent failure, it is ``failed`` and goes to the channel's dead-letter topic, from
which the admin DLQ API can replay it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from mode import Service
from pydantic import ValidationError

from notifyhub import clock, tracing
from notifyhub.agents.held import request_hold
from notifyhub.agents.reliability import dead_letter, letter_for, through_outages, to_completion
from notifyhub.app import (
    app,
    delivery_events_topic,
    enqueue,
    lane_agents,
    resources,
    send_dead_letter_topics,
    send_topics,
    settings,
)
from notifyhub.channels import Channel
from notifyhub.db import notifications
from notifyhub.delivery.backoff import retry_delay
from notifyhub.delivery.dispatch import Outcome, Result
from notifyhub.delivery.dispatchers import Dispatchers
from notifyhub.messages import DeadLetter, DeliveryEvent, Notification
from notifyhub.metrics import SEND_RETRIES
from notifyhub.status import Status

logger = logging.getLogger(__name__)

# A batch amortises the claim's round trip to PostgreSQL; the wait bounds the latency a
# lone notification pays for it.
BATCH_SIZE = 200
BATCH_WAIT_SECONDS = 0.02
# A notification waiting for a breaker to half-open looks again at least this late, so a
# breaker that is about to probe does not spin the held stage.
MIN_BREAKER_WAIT_SECONDS = 1.0

dispatchers = Dispatchers(settings, resources)


@dataclass
class Consequences:
    """What a batch's outcomes lead to, produced after the outcomes are recorded."""

    events: list[DeliveryEvent] = field(default_factory=list)
    retries: list[tuple[Notification, float]] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)

    def add(self, notification: Notification, outcome: Outcome) -> None:
        attempt = notification.attempt
        details = {
            "provider": outcome.provider,
            "provider_message_id": outcome.provider_message_id,
            "attempt": attempt,
        }
        if outcome.result is Result.DELIVERED:
            self.events.append(
                DeliveryEvent.about(notification, Status.DELIVERED, reason=outcome.reason, **details)
            )
        elif outcome.result is Result.UNAVAILABLE:
            # Nothing was tried, so no attempt is spent: wait for a breaker to probe.
            wait = max(MIN_BREAKER_WAIT_SECONDS, outcome.retry_after)
            self._retry(
                notification, notification, wait, f"{outcome.reason}; next try in {wait:.0f}s", details
            )
        elif outcome.result is Result.TEMPORARY and attempt < settings.send_max_attempts:
            wait = retry_delay(attempt, settings.retry_base_seconds, settings.retry_max_seconds)
            reason = f"attempt {attempt} of {settings.send_max_attempts} failed: {outcome.reason}"
            following = notification.model_copy(update={"attempt": attempt + 1})
            self._retry(notification, following, wait, f"{reason}; retrying in {wait:.1f}s", details)
        else:
            if outcome.result is Result.TEMPORARY:
                reason = f"gave up after {attempt} attempts: {outcome.reason}"
            else:
                reason = outcome.reason or "refused"
            self.events.append(
                DeliveryEvent.about(notification, Status.FAILED, reason=reason, **details)
            )
            self.letters.append(
                DeadLetter(
                    source_topic=send_topics[notification.channel]
                    .for_priority(notification.priority)
                    .get_topic_name(),
                    reason=reason,
                    tenant_id=notification.tenant_id,
                    channel=notification.channel,
                    notification_id=notification.id,
                    attempts=attempt,
                    message_key=notification.recipient_key,
                    # As a replay should send it: from the first attempt again.
                    message=notification.model_copy(update={"attempt": 1}).to_bytes(),
                )
            )

    def _retry(
        self,
        notification: Notification,
        following: Notification,
        wait: float,
        reason: str,
        details: dict[str, Any],
    ) -> None:
        self.events.append(DeliveryEvent.about(notification, Status.RETRYING, reason=reason, **details))
        self.retries.append((following, clock.now() + wait))
        SEND_RETRIES.labels(channel=notification.channel.value).inc()


async def _claimed(batch: Sequence[Notification]) -> list[Notification]:
    """The batch's notifications this stage may send: claimed now, each once.

    A notification can be in a batch twice (an earlier stage's message replayed after a
    rebalance); the claim is per notification, so only its first copy is kept.
    """
    unique: dict[uuid.UUID, Notification] = {}
    for notification in batch:
        unique.setdefault(notification.id, notification)
    pool = await resources.db()
    ids = await notifications.claim_many_for_sending(
        pool, [(n.id, n.tenant_id) for n in unique.values()]
    )
    for notification in unique.values():
        if notification.id not in ids:
            logger.info(
                "notification %s is final already (cancelled or sent); not sending", notification.id
            )
    return [n for n in unique.values() if n.id in ids]


async def _deliver_in_order(
    channel: Channel, queue: Sequence[Notification], slots: asyncio.Semaphore, traces: tracing.Traces
) -> list[tuple[Notification, Outcome]]:
    """One recipient's notifications, one after the other; the outcome of each.

    Each send has its span, a child of its record's trace; ``traces`` then holds that
    span's context, for what the outcome produces.
    """
    dispatcher = dispatchers[channel]
    outcomes: list[tuple[Notification, Outcome]] = []
    for notification in queue:
        async with slots:
            with tracing.working_on(
                traces[notification.id],
                "send",
                tenant_id=notification.tenant_id,
                notification_id=notification.id,
                **{"notifyhub.channel": channel.value, "notifyhub.attempt": notification.attempt},
            ) as span:
                traces[notification.id] = tracing.context_with(span)
                try:
                    outcome = await dispatcher.deliver(notification)
                except Exception as exc:
                    # A bug, not a provider's answer: the notification fails with the reason
                    # and its message goes to the channel's dead-letter topic, from which it
                    # can be replayed once the bug is fixed.
                    logger.exception("send of notification %s failed", notification.id)
                    outcome = Outcome(Result.FAILED, reason=f"internal error in send: {exc!r}")
                span.set_attribute("notifyhub.result", outcome.result.value)
                logger.debug("send: %s through %s", outcome.result.value, outcome.provider)
                outcomes.append((notification, outcome))
    return outcomes


def _parsed(
    channel: Channel, events: Sequence[faust.EventT]
) -> tuple[list[Notification], tracing.Traces, list[DeadLetter]]:
    good: list[Notification] = []
    traces: tracing.Traces = {}
    bad: list[DeadLetter] = []
    for event in events:
        tracing.observe_consumed(event, "send")
        try:
            notification = Notification.model_validate_json(event.value)
        except ValidationError as exc:
            bad.append(letter_for(event, f"invalid send message: {exc}", channel=channel))
            continue
        good.append(notification)
        traces.setdefault(notification.id, tracing.context_of(event.headers))
    return good, traces, bad


async def _produce(channel: Channel, consequences: Consequences, traces: tracing.Traces) -> None:
    """Each consequence carries its notification's send span as its trace parent."""
    for event in consequences.events:
        with tracing.within(traces.get(event.notification_id)):
            await enqueue(delivery_events_topic, str(event.notification_id).encode(), event.to_bytes())
    for notification, release_at in consequences.retries:
        with tracing.within(traces.get(notification.id)):
            await request_hold(notification, release_at, "send")
    for letter in consequences.letters:
        with tracing.within(traces.get(letter.notification_id)):
            await dead_letter(letter, send_dead_letter_topics[channel])


def _sender(channel: Channel) -> Callable[[faust.StreamT], Coroutine[Any, Any, None]]:
    async def send(stream: faust.StreamT) -> None:
        slots = asyncio.Semaphore(settings.send_concurrency[channel])
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
            try:
                # A worker told to stop lets the batch's sends finish and records them first.
                await to_completion(_send_batch(channel, events, slots), f"{channel} send batch")
            except Exception as exc:
                # A bug (outages are waited out inside): the agent would crash and Faust
                # would skip the batch. Its messages are kept instead, to be replayed.
                logger.exception("a %s send batch failed; dead-lettering it", channel)
                for event in events:
                    letter = letter_for(event, f"internal error in send: {exc!r}", channel=channel)
                    await dead_letter(letter, send_dead_letter_topics[channel])

    send.__name__ = f"send_{channel}"
    return send


async def _send_batch(
    channel: Channel, events: Sequence[faust.EventT], slots: asyncio.Semaphore
) -> None:
    batch, traces, letters = _parsed(channel, events)
    for letter in letters:
        await dead_letter(letter)
    if not batch:
        return
    claimed = await through_outages(lambda: _claimed(batch), f"claim {len(batch)}")
    per_recipient: dict[bytes, list[Notification]] = defaultdict(list)
    for notification in claimed:
        per_recipient[notification.recipient_key].append(notification)
    delivered = await asyncio.gather(
        *(_deliver_in_order(channel, queue, slots, traces) for queue in per_recipient.values())
    )
    consequences = Consequences()
    for per_queue in delivered:
        for notification, outcome in per_queue:
            consequences.add(notification, outcome)
    outcomes = consequences.events
    await through_outages(lambda: _record(outcomes), f"record {len(outcomes)} outcomes")
    await _produce(channel, consequences, traces)


async def _record(outcomes: Sequence[DeliveryEvent]) -> None:
    await notifications.record_outcomes(await resources.db(), outcomes)


senders = {
    channel: lane_agents(send_topics[channel], f"send-{channel}")(_sender(channel))
    for channel in Channel
}


@app.service
class ProviderConnections(Service):
    """Closes the providers' clients when the worker stops."""

    async def on_stop(self) -> None:
        await dispatchers.close()
