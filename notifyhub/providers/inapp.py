"""The in-app provider: delivering is storing the message in the recipient's inbox.

The inbox is PostgreSQL's ``inbox_messages``; one message per notification (a unique
key), so a redelivered send stores nothing twice. A new message is then published for
the sockets of its recipient on every worker (``notifyhub.inbox.realtime``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from notifyhub.db import inbox
from notifyhub.inbox import realtime
from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderError, SendResult
from notifyhub.runtime.outages import OUTAGES
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings

logger = logging.getLogger(__name__)


class InAppProvider:
    name = "inapp"
    channel = Channel.INAPP

    def __init__(self, resources: Resources, prefix: str) -> None:
        self._resources = resources
        self._prefix = prefix

    async def send(self, notification: Notification) -> SendResult:
        [answer] = await self.send_many([notification])
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def send_many(self, notifications: Sequence[Notification]) -> list[SendResult | Exception]:
        """Store the batch's messages in one statement, then announce the new ones together."""
        stored = await inbox.store_messages(await self._resources.db(), notifications)
        fresh = [message for message, new in stored if new]
        if fresh:
            try:
                await realtime.publish_many(self._resources.redis(), self._prefix, fresh)
            except OUTAGES as exc:
                # Stored is delivered: a socket that missed the live copy catches up
                # with ``since`` when it reconnects.
                logger.warning("%d inbox messages stored, live fan-out failed: %r", len(fresh), exc)
        return [SendResult(str(message["id"])) for message, _ in stored]

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, OUTAGES):
            return ProviderError(f"the inbox database is unavailable: {error!r}", temporary=True)
        if isinstance(error, asyncpg.PostgresError):
            return ProviderError(f"the inbox database refused the message: {error}", temporary=False)
        return None

    async def close(self) -> None:
        """The pool is the worker's, shared; it closes it."""


def create(channel: Channel, settings: Settings, resources: Resources) -> InAppProvider:
    return InAppProvider(resources, settings.topic_prefix)
