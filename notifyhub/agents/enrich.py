"""Enrich: decide what each recipient gets and when, and route it to its channel's sender.

Keyed by tenant:recipient, so one recipient's notifications are handled in order by one
worker, next to that recipient's partitions of the preferences and frequency-cap tables.
In order:
1. the recipient's preference for the channel: disabled → ``dropped``;
2. quiet hours (in the preference's timezone): → ``deferred``, held until they end, then
   back through enrich;
3. the frequency cap (the preference's, else the channel's default): reached → ``dropped``;
4. the content: the template rendered with the payload, or the payload's subject and body.
A template that is gone or does not render fails the notification with the reason.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import faust
from pydantic import ValidationError

from notifyhub import clock, tracing
from notifyhub.agents.held import request_hold
from notifyhub.agents.reliability import dead_letter, guarded, letter_for, through_outages
from notifyhub.app import (
    delivery_events_topic,
    enqueue,
    enrich_topics,
    lane_agents,
    resources,
    send_topics,
)
from notifyhub.db import templates
from notifyhub.frequency_caps import reason as cap_reason
from notifyhub.messages import DeliveryEvent, Notification
from notifyhub.metrics import RATE_LIMIT_DECISIONS, TEMPLATE_RENDER_SECONDS
from notifyhub.quiet_hours import quiet_until
from notifyhub.rendering import RenderError, render
from notifyhub.status import Status
from notifyhub.tables import caps
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


class Deferred(Exception):
    """The notification must wait until ``until`` (seconds since the epoch)."""

    def __init__(self, until: float) -> None:
        super().__init__(f"deferred until {until}")
        self.until = until


def decide(notification: Notification, now: float) -> None:
    """Apply the recipient's preference, quiet hours and frequency cap; raise when not now."""
    preference = preference_for(notification.recipient_key, notification.channel)
    if not preference.enabled:
        raise Undeliverable(
            Status.DROPPED, f"the recipient turned the {notification.channel} channel off"
        )
    if preference.quiet_hours_start and preference.quiet_hours_end:
        until = quiet_until(
            datetime.fromtimestamp(now, UTC),
            preference.quiet_hours_start,
            preference.quiet_hours_end,
            preference.timezone,
        )
        if until is not None:
            raise Deferred(until.timestamp())
    decision = caps.admit(
        notification.recipient_key, notification.channel, preference, now, notification.id
    )
    RATE_LIMIT_DECISIONS.labels("recipient", "allowed" if decision.allowed else "limited").inc()
    if not decision.allowed:
        raise Undeliverable(Status.DROPPED, cap_reason(decision, notification.channel))


async def render_content(notification: Notification) -> Notification:
    """The notification with the subject and body its provider will send."""
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
        with TEMPLATE_RENDER_SECONDS.labels(channel=notification.channel.value).time():
            rendered = render(
                notification.channel,
                template["subject_template"],
                template["body_template"],
                notification.payload,
            )
    except RenderError as exc:
        raise Undeliverable(Status.FAILED, f"template did not render: {exc}") from None
    return notification.model_copy(update={"subject": rendered.subject, "body": rendered.body})


async def _report(notification: Notification, status: Status, reason: str | None = None) -> None:
    event = DeliveryEvent.about(notification, status, reason=reason)
    await enqueue(delivery_events_topic, str(notification.id).encode(), event.to_bytes())


async def _route(notification: Notification) -> None:
    try:
        # Rendering first: it is the only step that awaits, and decide() writes the cap
        # table, which must not be counted for a notification that then fails to render.
        ready = await render_content(notification)
        decide(ready, clock.now())
    except Undeliverable as exc:
        await _report(notification, exc.status, exc.reason)
        return
    except Deferred as exc:
        await _report(notification, Status.DEFERRED, "quiet hours")
        await request_hold(notification, exc.until, "enrich")
        return
    await enqueue(
        send_topics[ready.channel].for_priority(ready.priority), ready.recipient_key, ready.to_bytes()
    )


@lane_agents(enrich_topics, "enrich")
async def enrich(stream: faust.StreamT) -> None:
    async for event in stream.events():
        try:
            notification = Notification.model_validate_json(event.value)
        except ValidationError as exc:
            await dead_letter(letter_for(event, f"invalid enrich message: {exc}"))
            continue
        with tracing.consuming(
            event, "enrich", tenant_id=notification.tenant_id, notification_id=notification.id
        ):
            await guarded(
                event,
                lambda n=notification: through_outages(lambda: _route(n), f"enrich {n.id}"),
                f"enrich of {notification.id}",
            )
