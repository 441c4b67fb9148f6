"""Real-time fan-out of inbox messages to WebSockets on any worker, through Redis pub/sub.

The worker that delivers an in-app message (the owner of the recipient's partition)
publishes it on ``{prefix}:inbox:{tenant}:{recipient}``. Every worker holds one pattern
subscription to ``{prefix}:inbox:*`` and hands each message to the sockets of that
recipient connected to it, so a socket may be on any worker. Pub/sub is fire and forget:
a socket that was away reconnects with ``since`` and gets what it missed from PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from typing import Any

import redis.asyncio as redis
from pydantic_core import to_jsonable_python

from notifyhub.runtime.outages import OUTAGES

logger = logging.getLogger(__name__)

# How long the subscriber waits before subscribing again after losing Redis.
RESUBSCRIBE_SECONDS = 1.0
# A socket that does not keep up loses its oldest live messages beyond this (it can
# catch up with ``since``) rather than growing without bound.
SOCKET_QUEUE_SIZE = 1000


def channel_for(prefix: str, tenant_id: uuid.UUID | str, recipient_id: str) -> str:
    return f"{prefix}:inbox:{tenant_id}:{recipient_id}"


async def publish_many(client: redis.Redis, prefix: str, messages: list[dict[str, Any]]) -> None:
    """Announce stored inbox messages to every worker, in one pipelined round trip."""
    async with client.pipeline(transaction=False) as pipe:
        for message in messages:
            channel = channel_for(prefix, message["tenant_id"], message["recipient_id"])
            pipe.publish(channel, json.dumps(to_jsonable_python(message)))
        await pipe.execute()


class InboxHub:
    """This worker's sockets, by recipient, and the one Redis subscription feeding them."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._sockets: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def join(self, tenant_id: uuid.UUID, recipient_id: str) -> asyncio.Queue[dict[str, Any]]:
        """A queue that receives the recipient's live messages from now on."""
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="inbox-hub")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SOCKET_QUEUE_SIZE)
        self._sockets[channel_for(self._prefix, tenant_id, recipient_id)].add(queue)
        await self._subscribed.wait()
        return queue

    def leave(
        self, tenant_id: uuid.UUID, recipient_id: str, queue: asyncio.Queue[dict[str, Any]]
    ) -> None:
        channel = channel_for(self._prefix, tenant_id, recipient_id)
        self._sockets[channel].discard(queue)
        if not self._sockets[channel]:
            del self._sockets[channel]

    @property
    def sockets(self) -> int:
        return sum(len(queues) for queues in self._sockets.values())

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub()
            try:
                await pubsub.psubscribe(f"{self._prefix}:inbox:*")
                self._subscribed.set()
                async for item in pubsub.listen():
                    if item["type"] == "pmessage":
                        self._deliver(item["channel"].decode(), item["data"])
            except OUTAGES as exc:
                logger.warning("inbox fan-out lost Redis (%r); subscribing again", exc)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)
            finally:
                # redis-py leaves PubSub.aclose unannotated (its Redis.aclose is typed).
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _deliver(self, channel: str, data: bytes) -> None:
        queues = self._sockets.get(channel)
        if not queues:
            return
        message = json.loads(data)
        for queue in queues:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(message)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
