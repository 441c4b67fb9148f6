"""The in-app provider: delivering is storing the message in the recipient's inbox.

The inbox is PostgreSQL's ``inbox_messages``; one message per notification (a unique
key), so a redelivered send stores nothing twice. The inbox API and its WebSocket read
from there.
"""

from __future__ import annotations

import asyncpg

from notifyhub.channels import Channel
from notifyhub.db import inbox
from notifyhub.messages import Notification
from notifyhub.outages import OUTAGES
from notifyhub.providers.base import ProviderError, SendResult
from notifyhub.resources import Resources
from notifyhub.settings import Settings


class InAppProvider:
    name = "inapp"
    channel = Channel.INAPP

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def send(self, notification: Notification) -> SendResult:
        message_id = await inbox.store_message(await self._resources.db(), notification)
        return SendResult(str(message_id))

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, OUTAGES):
            return ProviderError(f"the inbox database is unavailable: {error!r}", temporary=True)
        if isinstance(error, asyncpg.PostgresError):
            return ProviderError(f"the inbox database refused the message: {error}", temporary=False)
        return None

    async def close(self) -> None:
        """The pool is the worker's, shared; it closes it."""


def create(channel: Channel, settings: Settings, resources: Resources) -> InAppProvider:
    return InAppProvider(resources)
