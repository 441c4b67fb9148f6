"""Enrich: decide what each recipient gets, and route it to its channel's sender.

Keyed by tenant:recipient, so one recipient's notifications are handled in order
by one worker. Here the content comes from the request's payload (``subject``,
``body``); templates, preferences, quiet hours and frequency caps plug in here.
"""

from __future__ import annotations

import logging

import faust
from pydantic import ValidationError

from notifyhub.agents.reliability import dead_letter, through_outages
from notifyhub.app import app, enrich_topic, publish, send_topics
from notifyhub.messages import DeadLetter, Notification

logger = logging.getLogger(__name__)


def render(notification: Notification) -> Notification:
    """The notification with the subject and body its provider will send."""
    subject = notification.payload.get("subject")
    return notification.model_copy(
        update={
            "subject": subject if isinstance(subject, str) else None,
            "body": notification.payload["body"],
        }
    )


@app.agent(enrich_topic, name="enrich")
async def enrich(stream: faust.StreamT) -> None:
    async for event in stream.events():
        try:
            notification = render(Notification.model_validate_json(event.value))
        except (ValidationError, KeyError) as exc:
            await dead_letter(
                DeadLetter(
                    source_topic=event.message.topic,
                    reason=f"invalid enrich message: {exc}",
                    message_key=event.key,
                    message=event.value or b"",
                )
            )
            continue
        await through_outages(
            lambda n=notification: publish(send_topics[n.channel], n.recipient_key, n.to_bytes()),
            f"enrich {notification.id}",
        )
