"""Channel providers, and the one registry that names them.

Adding a provider: one module implementing ``Provider`` (``base.py``) with a
``create(channel, settings, resources)`` factory, one line in ``PROVIDERS`` below,
one test against a local server speaking the provider's protocol. The settings pick,
per channel, which providers send and in which failover order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from notifyhub.model.channels import Channel
from notifyhub.providers.base import Provider, ProviderConfigError, ProviderError, SendResult
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings

__all__ = [
    "PROVIDERS",
    "Provider",
    "ProviderConfigError",
    "ProviderError",
    "Registration",
    "SendResult",
    "providers_for",
]

ProviderFactory = Callable[[Channel, Settings, Resources], Provider]


@dataclass(frozen=True)
class Registration:
    channels: frozenset[Channel]
    # The module defining ``create``, imported only when the provider is configured: the
    # SDKs (boto, firebase-admin, twilio) cost start-up time and memory a worker that
    # does not use them need not pay.
    module: str

    @property
    def create(self) -> ProviderFactory:
        create: ProviderFactory = importlib.import_module(self.module).create
        return create


PROVIDERS: dict[str, Registration] = {
    "ses": Registration(frozenset({Channel.EMAIL}), "notifyhub.providers.ses"),
    "smtp": Registration(frozenset({Channel.EMAIL}), "notifyhub.providers.smtp"),
    "twilio": Registration(frozenset({Channel.SMS}), "notifyhub.providers.twilio"),
    "fcm": Registration(frozenset({Channel.PUSH}), "notifyhub.providers.fcm"),
    "inapp": Registration(frozenset({Channel.INAPP}), "notifyhub.providers.inapp"),
    "sink": Registration(frozenset(Channel), "notifyhub.providers.sink"),
}


def providers_for(channel: Channel, settings: Settings, resources: Resources) -> list[Provider]:
    """The channel's providers in failover order (empty when none is configured).

    Raises ProviderConfigError when a name is unknown, serves another channel, or its
    provider's settings are missing: a worker never starts half-configured.
    """
    providers: list[Provider] = []
    for name in settings.providers_for(channel):
        registration = PROVIDERS.get(name)
        if registration is None:
            raise ProviderConfigError(
                f"unknown provider {name!r} for the {channel} channel; known: {', '.join(PROVIDERS)}"
            )
        if channel not in registration.channels:
            raise ProviderConfigError(f"provider {name!r} cannot send on the {channel} channel")
        providers.append(registration.create(channel, settings, resources))
    return providers
