"""The sink provider: records what it was asked to send, and sends nothing.

For development, tests and benchmarks. Each send is appended to a Redis list
(``{topic_prefix}:sink``) so that any process can see what the pipeline sent.

It honours a dedupe key, as a provider with idempotency keys does: the notification id.
A send for an id it recorded already is answered with the first send's message id and
not recorded again; it counts those repeats (``{topic_prefix}:sink:repeats``). The
pipeline repeats a send when it cannot know whether the first one got through: a worker
died after the provider call, or the provider's answer was lost (Redis went away after
writing the record).

It is used for a channel only when ``NOTIFYHUB_SINK_CHANNELS`` names that channel
(or a channel's provider list names ``sink``), never in place of a configured provider.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import NamedTuple

import redis.asyncio as redis
from redis.exceptions import RedisError

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderError, SendResult
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings


def sink_key(topic_prefix: str) -> str:
    """The Redis list that holds a deployment's sunk messages, oldest first."""
    return f"{topic_prefix}:sink"


class SinkKeys(NamedTuple):
    """Every Redis key of a deployment's sink."""

    records: str  # the list of sunk messages
    sent: str  # the hash of dedupe keys: notification id -> provider message id
    repeats: str  # how many repeated sends were answered without recording them again


def sink_keys(topic_prefix: str) -> SinkKeys:
    records = sink_key(topic_prefix)
    return SinkKeys(records, f"{records}:sent", f"{records}:repeats")


# Atomic, so that a send retried after a lost answer finds the first one's dedupe key; one
# call for a whole batch, in order. KEYS: the list, the hash of dedupe keys, the repeat
# counter. ARGV: per message, its dedupe key, its message id and its record. Answers each
# message's id (the first send's, for a repeat).
RECORD_ONCE = """
local answers = {}
for i = 1, #ARGV, 3 do
    local first = redis.call('HGET', KEYS[2], ARGV[i])
    if first then
        redis.call('INCR', KEYS[3])
        answers[#answers + 1] = first
    else
        redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
        redis.call('RPUSH', KEYS[1], ARGV[i + 2])
        answers[#answers + 1] = ARGV[i + 1]
    end
end
return answers
"""


class SinkProvider:
    name = "sink"

    def __init__(self, channel: Channel, client: redis.Redis, topic_prefix: str) -> None:
        self.channel = channel
        self._client = client
        self._keys = sink_keys(topic_prefix)
        self._record_once = client.register_script(RECORD_ONCE)

    async def send(self, notification: Notification) -> SendResult:
        [answer] = await self.send_many([notification])
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def send_many(self, notifications: Sequence[Notification]) -> list[SendResult | Exception]:
        """Every record in one call, in order."""
        args: list[str] = []
        for notification in notifications:
            # One message id per send, as a provider gives: the notification and its attempt.
            provider_message_id = f"sink-{notification.id}-{notification.attempt}"
            args += (
                str(notification.id),
                provider_message_id,
                self._record(notification, provider_message_id),
            )
        answers = await self._record_once(keys=self._keys, args=args)
        return [SendResult(a.decode() if isinstance(a, bytes) else a) for a in answers]

    @staticmethod
    def _record(notification: Notification, provider_message_id: str) -> str:
        return json.dumps(
            {
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
        )

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, RedisError):
            return ProviderError(f"sink could not record the message: {error}", temporary=True)
        return None

    async def close(self) -> None:
        """The Redis client is the worker's, shared; it closes it."""


def create(channel: Channel, settings: Settings, resources: Resources) -> SinkProvider:
    return SinkProvider(channel, resources.redis(), settings.topic_prefix)
