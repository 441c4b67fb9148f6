"""The sink provider against the real Redis: it records each notification once."""

from __future__ import annotations

import json
import uuid
from typing import cast

import redis.asyncio as redis

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.sink import SinkProvider, sink_keys


def sms(body: str) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel=Channel.SMS,
        recipient_id="u",
        recipient_address="+15551234567",
        body=body,
    )


async def test_a_repeated_send_is_answered_with_the_first_and_recorded_once(
    redis_client: redis.Redis,
) -> None:
    prefix = f"sink-test-{uuid.uuid4().hex[:8]}"
    keys = sink_keys(prefix)
    sink = SinkProvider(Channel.SMS, redis_client, prefix)
    first, other = sms("first"), sms("other")
    try:
        sent = await sink.send(first)
        again = await sink.send(first)
        await sink.send(other)

        assert again.provider_message_id == sent.provider_message_id
        recorded = [json.loads(raw) for raw in await redis_client.lrange(keys.records, 0, -1)]
        assert [r["notification_id"] for r in recorded] == [str(first.id), str(other.id)]
        assert recorded[0]["provider_message_id"] == sent.provider_message_id
        assert int(cast(bytes, await redis_client.get(keys.repeats))) == 1
    finally:
        await redis_client.delete(*sink_keys(prefix))
