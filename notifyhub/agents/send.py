"""Send: one agent per channel hands each notification to the channel's provider
and reports the outcome as a delivery event.

Retries, failover and circuit breakers are the providers issue's; here a provider
error is final and reported as ``failed`` with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import faust
from pydantic import ValidationError

from notifyhub.agents.reliability import dead_letter, guarded, through_outages
from notifyhub.app import delivery_events_topic, enqueue, lane_agents, resources, send_topics, settings
from notifyhub.channels import Channel
from notifyhub.db import notifications
from notifyhub.messages import DeadLetter, DeliveryEvent, Notification
from notifyhub.providers import Provider, ProviderError, provider_for
from notifyhub.status import Status

logger = logging.getLogger(__name__)


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


async def _claim(notification: Notification) -> bool:
    return await notifications.claim_for_sending(
        await resources.db(), notification.id, notification.tenant_id
    )


async def _send_one(provider: Provider | None, notification: Notification) -> None:
    # The claim is what makes cancel final and a redelivered message harmless: only a
    # notification that is not final yet is handed to a provider.
    if not await through_outages(lambda: _claim(notification), f"claim {notification.id}"):
        logger.info("notification %s is final already (cancelled or sent); not sending", notification.id)
        return
    outcome = await deliver(provider, notification)
    await enqueue(delivery_events_topic, str(outcome.notification_id).encode(), outcome.to_bytes())


def _sender(channel: Channel) -> Callable[[faust.StreamT], Coroutine[Any, Any, None]]:
    async def send(stream: faust.StreamT) -> None:
        provider = provider_for(channel, settings, resources.redis())
        if provider is None:
            logger.warning(
                "no provider for the %s channel: its notifications will fail "
                "(configure one, or name the channel in NOTIFYHUB_SINK_CHANNELS)",
                channel,
            )
        async for event in stream.events():
            try:
                notification = Notification.model_validate_json(event.value)
            except ValidationError as exc:
                await dead_letter(
                    DeadLetter(
                        source_topic=event.message.topic,
                        reason=f"invalid send message: {exc}",
                        channel=channel,
                        message_key=event.key,
                        message=event.value or b"",
                    )
                )
                continue
            await guarded(
                event,
                lambda n=notification: _send_one(provider, n),
                f"send of {notification.id}",
            )

    send.__name__ = f"send_{channel}"
    return send


senders = {
    channel: lane_agents(send_topics[channel], f"send-{channel}")(_sender(channel))
    for channel in Channel
}
