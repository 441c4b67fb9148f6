"""A topic send's fan-out, one chunk of subscribers at a time: the notifications a chunk
becomes, and the records that carry them and the walk on.

A send's notification for a subscriber has an id derived from the send and the recipient
(``notification_id``), so a chunk done twice (a worker died before recording it) stores
nothing twice and passes on only what is not final yet, as intake does with a record read
again. Each notification's payload carries ``topic_send_id``, so a send's notifications
can be found among the tenant's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from notifyhub.cores.entry import entry_records
from notifyhub.cores.records import Headers, Outgoing
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import (
    ADDRESSED_CHANNELS,
    DeliveryEvent,
    IntakeMessage,
    Message,
    Notification,
)

# The payload field naming the send a notification came from.
TOPIC_SEND_FIELD = "topic_send_id"


class TopicFanout(Message):
    """Walk one step of a topic send (topic fan-out topic, version 1), keyed by the send's id.

    ``step`` is how many chunks are done; the record for the next one is produced with the
    chunk's notifications, so the walk goes on one record at a time.
    """

    v: Literal[1] = 1
    topic_send_id: uuid.UUID
    tenant_id: uuid.UUID
    step: int = 0

    @property
    def key(self) -> bytes:
        return str(self.topic_send_id).encode()


@dataclass(frozen=True)
class TopicSend:
    """What a send asks for each subscriber (its ``topic_sends`` row)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    channel: Channel
    type: str | None
    template_id: str | None
    payload: dict[str, Any]
    priority: int
    locale: str | None


@dataclass
class Chunk:
    """A chunk's notifications, and the subscribers left out (no address for the channel)."""

    messages: list[IntakeMessage] = field(default_factory=list)
    unaddressed: list[str] = field(default_factory=list)


def notification_id(send_id: uuid.UUID, recipient_id: str) -> uuid.UUID:
    """The id of a send's notification for one recipient: the same every time it is made."""
    return uuid.uuid5(send_id, recipient_id)


def chunk_of(
    send: TopicSend,
    recipient_ids: list[str],
    profiles: dict[str, tuple[str | None, str | None]],
) -> Chunk:
    """One notification per subscriber, addressed and in the locale of its profile
    (``profiles``: recipient → (address for the channel, locale)); a subscriber the channel
    needs an address for and whose profile has none is left out."""
    chunk = Chunk()
    payload = {**send.payload, TOPIC_SEND_FIELD: str(send.id)}
    addressed = send.channel in ADDRESSED_CHANNELS
    for recipient_id in recipient_ids:
        address, profile_locale = profiles.get(recipient_id, (None, None))
        if addressed and not address:
            chunk.unaddressed.append(recipient_id)
            continue
        chunk.messages.append(
            # Checked when the send was accepted, and the profile's address when it was stored.
            IntakeMessage.model_construct(
                id=notification_id(send.id, recipient_id),
                tenant_id=send.tenant_id,
                channel=send.channel,
                recipient_id=recipient_id,
                recipient_address=address if addressed else None,
                type=send.type,
                template_id=send.template_id,
                payload=payload,
                priority=send.priority,
                idempotency_key=None,
                scheduled_at=None,
                # As for any notification: the request's locale, else the profile's.
                locale=send.locale or (profile_locale if send.template_id else None),
            )
        )
    return chunk


def chunk_records(
    topics: TopicNames,
    passed: dict[uuid.UUID, bool],
    entries: list[tuple[Notification, DeliveryEvent]],
    headers: Headers = (),
) -> list[Outgoing]:
    """Each notification passed on (``passed``: the ids stored now, True, or stored before
    and not final yet, False) with its entry event, as intake passes them on."""
    records: list[Outgoing] = []
    for notification, event in entries:
        if notification.id in passed:
            records += entry_records(
                topics, notification, event, headers, persisted=passed[notification.id]
            )
    return records


def next_step(fanout: TopicFanout, topic: str) -> Outgoing:
    """The record that walks the send's next chunk."""
    following = fanout.model_copy(update={"step": fanout.step + 1})
    return Outgoing(topic, following.key, following.to_bytes())
