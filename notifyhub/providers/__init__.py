"""Channel providers, and the registry that picks one per channel from the settings."""

from __future__ import annotations

import redis.asyncio as redis

from notifyhub.channels import Channel
from notifyhub.providers.base import Provider, ProviderError, SendResult
from notifyhub.providers.sink import SinkProvider
from notifyhub.settings import Settings

__all__ = ["Provider", "ProviderError", "SendResult", "provider_for"]


def provider_for(channel: Channel, settings: Settings, redis_client: redis.Redis) -> Provider | None:
    """The provider configured for a channel, or None when the channel has none."""
    if channel in settings.sink_channels:
        return SinkProvider(channel, redis_client, settings.topic_prefix)
    return None
