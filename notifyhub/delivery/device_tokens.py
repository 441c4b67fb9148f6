"""Push fan-out's view of the recipients' device tokens (PostgreSQL), and the event it
emits when a provider calls a token dead."""

from __future__ import annotations

import logging
import uuid

from notifyhub.app import device_token_events_topic, enqueue
from notifyhub.db import recipients
from notifyhub.model.messages import DeviceTokenEvent, Notification
from notifyhub.runtime.resources import Resources

logger = logging.getLogger(__name__)


class RegisteredDeviceTokens:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def active(self, tenant_id: uuid.UUID, recipient_id: str) -> list[str]:
        return await recipients.active_device_tokens(await self._resources.db(), tenant_id, recipient_id)

    async def deactivate(self, notification: Notification, token: str, reason: str) -> None:
        """Deactivate the token and emit ``device_token.deactivated`` (once: a token already
        inactive, say after a redelivery, emits nothing)."""
        changed = await recipients.deactivate_device_token(
            await self._resources.db(), notification.tenant_id, token
        )
        if not changed:
            return
        logger.info(
            "deactivated a device token of %s (tenant %s): %s",
            notification.recipient_id,
            notification.tenant_id,
            reason,
        )
        event = DeviceTokenEvent(
            tenant_id=notification.tenant_id,
            user_id=notification.recipient_id,
            token=token,
            reason=reason,
            notification_id=notification.id,
        )
        await enqueue(device_token_events_topic, notification.recipient_key, event.to_bytes())
