"""The sink provider: records what it was asked to send, and sends nothing.

For development, tests and benchmarks. Each send is appended to a Redis list
(``{topic_prefix}:sink``) so that any process can see what the pipeline sent.
It is used for a channel only when ``NOTIFYHUB_SINK_CHANNELS`` names that channel
(or a channel's provider list names ``sink``), never in place of a configured provider.
"""

from __future__ import annotations

import json
import time
import uuid

import redis.asyncio as redis
from redis.exceptions import RedisError

from notifyhub.channels import Channel
from notifyhub.messages import Notification
from notifyhub.providers.base import ProviderError, SendResult
from notifyhub.resources import Resources
from notifyhub.settings import Settings


def sink_key(topic_prefix: str) -> str:
    """The Redis list that holds a deployment's sunk messages, oldest first."""
    return f"{topic_prefix}:sink"


class SinkProvider:
    name = "sink"

    def __init__(self, channel: Channel, client: redis.Redis, topic_prefix: str) -> None:
        self.channel = channel
        self._client = client
        self._key = sink_key(topic_prefix)

    async def send(self, notification: Notification) -> SendResult:
        provider_message_id = f"sink-{uuid.uuid4()}"
        record = {
            "provider_message_id": provider_message_id,
            "notification_id": str(notification.id),
            "tenant_id": str(notification.tenant_id),
            "channel": notification.channel.value,
            "recipient_id": notification.recipient_id,
            "recipient_address": notification.recipient_address,
            "subject": notification.subject,
            "body": notification.body,
            "attempt": notification.attempt,
            # Wall-clock time of the send, for latency measurements (seconds since the epoch).
            "recorded_at": time.time(),
        }
        await self._client.rpush(self._key, json.dumps(record))
        return SendResult(provider_message_id)

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, RedisError):
            return ProviderError(f"sink could not record the message: {error}", temporary=True)
        return None

    async def close(self) -> None:
        """The Redis client is the worker's, shared; it closes it."""


def create(channel: Channel, settings: Settings, resources: Resources) -> SinkProvider:
    return SinkProvider(channel, resources.redis(), settings.topic_prefix)
