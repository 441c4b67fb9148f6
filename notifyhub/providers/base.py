"""The one small interface every channel provider implements.

A provider sends one message to one address and says what the provider answered.
Everything around the call (timeouts, retries, failover, circuit breakers, rate
limits, push fan-out to device tokens) is the delivery machinery's
(``notifyhub.delivery``), so a provider is one file: its ``send``, its ``classify``
and a ``create`` factory registered in ``notifyhub.providers``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification


@dataclass(frozen=True)
class SendResult:
    """What a provider said when it accepted a message."""

    provider_message_id: str


class ProviderError(Exception):
    """A provider refused or failed a send.

    ``temporary``: a later attempt may succeed (throttling, 5xx, timeouts, connection
    errors); otherwise the message itself is refused and retrying cannot help.
    ``code``: the provider's own error code (``MessageRejected``, ``21211``, ``UNREGISTERED``).
    ``address_invalid``: the address will never work again (a push token FCM reports as
    unregistered); the address's owner is told and the address is deactivated.
    ``opted_out``: the recipient has opted out of the deployment's sender (Twilio's 21610,
    after a STOP that reached Twilio but not us); the address is suppressed for every
    tenant, as an inbound STOP suppresses it, until the recipient texts START.
    """

    def __init__(
        self,
        message: str,
        *,
        temporary: bool,
        code: str | None = None,
        address_invalid: bool = False,
        opted_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.temporary = temporary
        self.code = code
        self.address_invalid = address_invalid
        self.opted_out = opted_out


class ProviderConfigError(Exception):
    """A provider was asked for but cannot be built: its settings or credentials are
    missing or invalid. The worker refuses to start; the message names what to set."""


class Provider(Protocol):
    """Sends one notification, on one channel, to ``notification.recipient_address``
    (for push: one device token)."""

    name: str
    channel: Channel

    async def send(self, notification: Notification) -> SendResult:
        """Send, or raise: the provider's own errors are mapped by ``classify``."""
        ...

    def classify(self, error: Exception) -> ProviderError | None:
        """What an error raised by ``send`` means: a ProviderError (temporary or not), or
        None when it is not the provider's answer at all (a bug: the message is dead-lettered)."""
        ...

    async def close(self) -> None:
        """Release connections and sessions (the worker is stopping)."""
        ...


@runtime_checkable
class BatchProvider(Protocol):
    """A provider that can also send a batch in one round trip (the sink, the in-app inbox)."""

    async def send_many(self, notifications: Sequence[Notification]) -> list[SendResult | Exception]:
        """Send each notification, in order: each one's answer, or the error its send raised
        (``classify`` says what it means). Raises when the call as a whole failed."""
        ...
