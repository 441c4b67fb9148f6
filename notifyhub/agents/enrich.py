"""Enrich: decide what each recipient gets, and route it to its channel's sender.

Keyed by tenant:recipient, so one recipient's notifications are handled in order by
one worker, next to that recipient's partition of the preferences table. In order:
the recipient's preference for the channel (disabled → ``dropped``), then the
content: the template rendered with the payload, or the payload's subject and body.
A template that is gone or does not render fails the notification with the reason.
"""

from __future__ import annotations

import logging
import time
import uuid

import asyncpg
import faust
from pydantic import ValidationError

from notifyhub.agents.reliability import dead_letter, guarded, through_outages
from notifyhub.app import app, delivery_events_topic, enrich_topic, publish, resources, send_topics
from notifyhub.db import templates
from notifyhub.messages import DeadLetter, DeliveryEvent, Notification
from notifyhub.rendering import RenderError, render
from notifyhub.status import Status
from notifyhub.tables.preferences import preference_for

logger = logging.getLogger(__name__)

# Templates are read from PostgreSQL at most this often per template and worker: a
# burst to many recipients renders from memory, and an edit or delete still takes
# effect within this time.
TEMPLATE_CACHE_SECONDS = 2.0

_template_cache: dict[uuid.UUID, tuple[float, asyncpg.Record | None]] = {}


class Undeliverable(Exception):
    """The notification cannot be sent as it is; the status and reason say why."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _template(template_id: uuid.UUID) -> asyncpg.Record | None:
    cached = _template_cache.get(template_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    row = await templates.for_rendering(await resources.db(), template_id)
    _template_cache[template_id] = (time.monotonic() + TEMPLATE_CACHE_SECONDS, row)
    return row


async def prepare(notification: Notification) -> Notification:
    """The notification with the subject and body its provider will send."""
    preference = preference_for(notification.recipient_key, notification.channel)
    if not preference.enabled:
        raise Undeliverable(
            Status.DROPPED, f"the recipient turned the {notification.channel} channel off"
        )
    if notification.template_id is None:
        subject = notification.payload.get("subject")
        return notification.model_copy(
            update={
                "subject": subject if isinstance(subject, str) else None,
                "body": notification.payload["body"],
            }
        )
    template = await _template(uuid.UUID(notification.template_id))
    if template is None:
        raise Undeliverable(
            Status.FAILED, f"template {notification.template_id} was deleted or deactivated"
        )
    try:
        rendered = render(
            notification.channel,
            template["subject_template"],
            template["body_template"],
            notification.payload,
        )
    except RenderError as exc:
        raise Undeliverable(Status.FAILED, f"template did not render: {exc}") from None
    return notification.model_copy(update={"subject": rendered.subject, "body": rendered.body})


async def _route(notification: Notification) -> None:
    try:
        ready = await prepare(notification)
    except Undeliverable as exc:
        event = DeliveryEvent.about(notification, exc.status, reason=exc.reason)
        await publish(delivery_events_topic, str(notification.id).encode(), event.to_bytes())
        return
    await publish(send_topics[ready.channel], ready.recipient_key, ready.to_bytes())


@app.agent(enrich_topic, name="enrich")
async def enrich(stream: faust.StreamT) -> None:
    async for event in stream.events():
        try:
            notification = Notification.model_validate_json(event.value)
        except ValidationError as exc:
            await dead_letter(
                DeadLetter(
                    source_topic=event.message.topic,
                    reason=f"invalid enrich message: {exc}",
                    message_key=event.key,
                    message=event.value or b"",
                )
            )
            continue
        await guarded(
            event,
            lambda n=notification: through_outages(lambda: _route(n), f"enrich {n.id}"),
            f"enrich of {notification.id}",
        )
