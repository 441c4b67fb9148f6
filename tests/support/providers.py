"""What the provider tests share."""

from __future__ import annotations

import pytest

from notifyhub.model.messages import Notification
from notifyhub.providers.base import Provider, ProviderError


async def refusal(provider: Provider, notification: Notification) -> ProviderError:
    """Send, expecting the provider to fail; what its ``classify`` makes of the failure."""
    with pytest.raises(Exception) as raised:
        await provider.send(notification)
    error = provider.classify(raised.value)
    assert error is not None, repr(raised.value)
    return error
