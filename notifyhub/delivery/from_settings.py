"""The worker's dispatchers, one per channel, built once from the settings.

Built before the worker starts (``notifyhub worker`` calls ``build``), so a provider
whose settings or credentials are missing stops the worker at start-up with a message
saying what to set, rather than failing notifications one by one.
"""

from __future__ import annotations

import logging

from notifyhub.delivery.breakers import CircuitBreaker
from notifyhub.delivery.device_tokens import RegisteredDeviceTokens
from notifyhub.delivery.dispatch import Dispatcher
from notifyhub.delivery.provider_limits import ProviderRateLimiter
from notifyhub.model.channels import Channel
from notifyhub.providers import providers_for
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings

logger = logging.getLogger(__name__)


class Dispatchers:
    def __init__(self, settings: Settings, resources: Resources) -> None:
        self._settings = settings
        self._resources = resources
        self._dispatchers: dict[Channel, Dispatcher] = {}

    def build(self) -> None:
        """Build every channel's providers; raises ProviderConfigError naming what is missing."""
        if self._dispatchers:
            return
        settings = self._settings
        breakers: dict[str, CircuitBreaker] = {}
        limiter = ProviderRateLimiter(
            self._resources.redis(), settings.topic_prefix, settings.provider_rate_limits
        )
        tokens = RegisteredDeviceTokens(self._resources)
        for channel in Channel:
            providers = providers_for(channel, settings, self._resources)
            for provider in providers:
                breakers.setdefault(
                    provider.name,
                    CircuitBreaker(
                        provider.name,
                        failure_threshold=settings.breaker_failure_threshold,
                        reset_seconds=settings.breaker_reset_seconds,
                    ),
                )
            if providers:
                logger.info(
                    "%s channel providers, in failover order: %s",
                    channel,
                    ", ".join(p.name for p in providers),
                )
            else:
                logger.warning(
                    "no provider for the %s channel: its notifications will fail (set "
                    "NOTIFYHUB_%s_PROVIDERS, or name the channel in NOTIFYHUB_SINK_CHANNELS)",
                    channel,
                    channel.value.upper(),
                )
            self._dispatchers[channel] = Dispatcher(
                channel, providers, breakers, limiter, settings.provider_timeout_seconds, tokens
            )

    def __getitem__(self, channel: Channel) -> Dispatcher:
        self.build()
        return self._dispatchers[channel]

    async def close(self) -> None:
        for dispatcher in self._dispatchers.values():
            for provider in dispatcher.providers:
                await provider.close()
        self._dispatchers.clear()
