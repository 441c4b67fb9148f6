"""Send: one agent per channel and lane hands notifications to the channel's provider and
reports each outcome as a delivery event.

Messages are taken in batches. The batch is claimed in one statement (only notifications
that are not final are claimed: a cancelled one, or a redelivered one that was sent, is
not sent), then sent with up to the channel's concurrency in flight (NotifyHub's worker
pools: email 5, push 3, sms 2, in-app 5), one recipient's notifications one after the
other and in order. The outcomes are written to PostgreSQL in one statement before the
delivery events are produced, and the batch's offsets are acknowledged only after every
send in it has finished, so concurrency never commits past a send still in flight (faust-streaming
issue 606 is why agents themselves run with concurrency 1).

Retries, failover and circuit breakers are the providers issue's; here a provider
error is final and reported as ``failed`` with its reason.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import faust
from pydantic import ValidationError

from notifyhub.agents.reliability import dead_letter, letter_for, through_outages
from notifyhub.app import delivery_events_topic, enqueue, lane_agents, resources, send_topics, settings
from notifyhub.channels import Channel
from notifyhub.db import notifications
from notifyhub.messages import DeadLetter, DeliveryEvent, Notification
from notifyhub.providers import Provider, ProviderError, provider_for
from notifyhub.status import Status

logger = logging.getLogger(__name__)

# A batch amortises the claim's round trip to PostgreSQL; the wait bounds the latency a
# lone notification pays for it.
BATCH_SIZE = 200
BATCH_WAIT_SECONDS = 0.02


async def deliver(provider: Provider | None, notification: Notification) -> DeliveryEvent:
    """Ask the provider to send; the event says what happened."""
    if provider is None:
        return DeliveryEvent.about(
            notification,
            Status.FAILED,
            reason=f"no provider is configured for the {notification.channel} channel",
        )
    try:
        result = await provider.send(notification)
    except ProviderError as exc:
        return DeliveryEvent.about(notification, Status.FAILED, provider=provider.name, reason=str(exc))
    return DeliveryEvent.about(
        notification,
        Status.DELIVERED,
        provider=provider.name,
        provider_message_id=result.provider_message_id,
    )


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


async def _send_in_order(
    provider: Provider | None, queue: Sequence[Notification], slots: asyncio.Semaphore
) -> list[DeliveryEvent]:
    """One recipient's notifications, one after the other; the outcome of each."""
    outcomes: list[DeliveryEvent] = []
    for notification in queue:
        async with slots:
            try:
                outcomes.append(await deliver(provider, notification))
            except Exception as exc:
                # A bug, not a provider's answer: keep the message for the admin DLQ API.
                logger.exception("send of %s failed", notification.id)
                await dead_letter(
                    DeadLetter(
                        source_topic=send_topics[notification.channel].normal.get_topic_name(),
                        reason=f"internal error in send: {exc!r}",
                        tenant_id=notification.tenant_id,
                        channel=notification.channel,
                        message_key=notification.recipient_key,
                        message=notification.to_bytes(),
                    )
                )
    return outcomes


async def _record(outcomes: Sequence[DeliveryEvent]) -> None:
    await notifications.record_outcomes(await resources.db(), outcomes)


def _parsed(
    channel: Channel, events: Sequence[faust.EventT]
) -> tuple[list[Notification], list[DeadLetter]]:
    good: list[Notification] = []
    bad: list[DeadLetter] = []
    for event in events:
        try:
            good.append(Notification.model_validate_json(event.value))
        except ValidationError as exc:
            bad.append(letter_for(event, f"invalid send message: {exc}", channel=channel))
    return good, bad


def _sender(channel: Channel) -> Callable[[faust.StreamT], Coroutine[Any, Any, None]]:
    async def send(stream: faust.StreamT) -> None:
        provider = provider_for(channel, settings, resources.redis())
        if provider is None:
            logger.warning(
                "no provider for the %s channel: its notifications will fail "
                "(configure one, or name the channel in NOTIFYHUB_SINK_CHANNELS)",
                channel,
            )
        slots = asyncio.Semaphore(settings.send_concurrency[channel])
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WAIT_SECONDS):
            batch, letters = _parsed(channel, events)
            for letter in letters:
                await dead_letter(letter)
            if not batch:
                continue
            claimed = await through_outages(lambda b=batch: _claimed(b), f"claim {len(batch)}")
            per_recipient: dict[bytes, list[Notification]] = defaultdict(list)
            for notification in claimed:
                per_recipient[notification.recipient_key].append(notification)
            sent = await asyncio.gather(
                *(_send_in_order(provider, queue, slots) for queue in per_recipient.values())
            )
            outcomes = [outcome for per_queue in sent for outcome in per_queue]
            # The outcome is written before the batch is acknowledged: a message replayed
            # after a rebalance or a crash (Kafka is at-least-once) then finds its
            # notification final and cannot be claimed, and sent, again.
            await through_outages(lambda o=outcomes: _record(o), f"record {len(outcomes)} outcomes")
            for outcome in outcomes:
                await enqueue(
                    delivery_events_topic, str(outcome.notification_id).encode(), outcome.to_bytes()
                )

    send.__name__ = f"send_{channel}"
    return send


senders = {
    channel: lane_agents(send_topics[channel], f"send-{channel}")(_sender(channel))
    for channel in Channel
}
