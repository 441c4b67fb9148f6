"""The one small interface every channel provider implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from notifyhub.channels import Channel
from notifyhub.messages import Notification


@dataclass(frozen=True)
class SendResult:
    """What a provider said when it accepted a message."""

    provider_message_id: str


class ProviderError(Exception):
    """A provider refused or failed a send. ``temporary`` says whether a retry may help."""

    def __init__(self, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.temporary = temporary


class Provider(Protocol):
    """Sends one notification on one channel; raises ProviderError when it cannot."""

    name: str
    channel: Channel

    async def send(self, notification: Notification) -> SendResult: ...
