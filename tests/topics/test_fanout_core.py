"""The fan-out core: a chunk of subscribers as notifications, without Kafka or PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

from notifyhub.cores.entry import entry_event
from notifyhub.cores.intake import as_notification
from notifyhub.cores.topics import (
    TOPIC_SEND_FIELD,
    TopicFanout,
    TopicSend,
    chunk_of,
    chunk_records,
    next_step,
    notification_id,
)
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel

TOPICS = TopicNames("nh", priority_threshold=3)
TENANT = uuid.UUID("00000000-0000-0000-0000-0000000000aa")


def a_send(channel: Channel = Channel.INAPP, **changes: object) -> TopicSend:
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": TENANT,
        "channel": channel,
        "type": "news",
        "template_id": None,
        "payload": {"body": "hello"},
        "priority": 5,
        "locale": None,
        **changes,
    }
    return TopicSend(**fields)


def test_each_subscriber_gets_a_notification_whose_id_the_send_and_recipient_decide() -> None:
    send = a_send()
    first = chunk_of(send, ["ada", "bob"], {})
    again = chunk_of(send, ["ada", "bob"], {})
    assert [m.id for m in first.messages] == [m.id for m in again.messages]
    assert [m.id for m in first.messages] == [notification_id(send.id, r) for r in ("ada", "bob")]
    assert len({m.id for m in first.messages}) == 2
    assert all(m.payload == {"body": "hello", TOPIC_SEND_FIELD: str(send.id)} for m in first.messages)
    assert all(m.tenant_id == TENANT and m.recipient_address is None for m in first.messages)


def test_an_addressed_channel_takes_the_profile_address_and_leaves_out_who_has_none() -> None:
    send = a_send(Channel.EMAIL)
    chunk = chunk_of(send, ["ada", "bob", "cy"], {"ada": ("ada@example.com", None), "bob": (None, "fr")})
    assert [(m.recipient_id, m.recipient_address) for m in chunk.messages] == [
        ("ada", "ada@example.com")
    ]
    assert chunk.unaddressed == ["bob", "cy"]


def test_a_template_is_rendered_in_the_sends_locale_else_the_profiles() -> None:
    template = str(uuid.uuid4())
    profiles: dict[str, tuple[str | None, str | None]] = {"ada": (None, "pt-BR")}
    assert chunk_of(a_send(template_id=template), ["ada"], profiles).messages[0].locale == "pt-BR"
    pinned = a_send(template_id=template, locale="de")
    assert chunk_of(pinned, ["ada"], profiles).messages[0].locale == "de"


def test_the_records_pass_on_what_was_stored_or_is_not_final_and_the_walk_goes_on() -> None:
    send = a_send()
    chunk = chunk_of(send, ["ada", "bob", "cy"], {})
    notifications = [as_notification(m) for m in chunk.messages]
    entries = [(n, entry_event(n, 0.0)) for n in notifications]
    ada, bob, _ = (n.id for n in notifications)
    records = chunk_records(TOPICS, {ada: True, bob: False}, entries)
    enriched = [r for r in records if r.topic == "nh.enrich"]
    assert [r.key for r in enriched] == [f"{TENANT}:ada".encode(), f"{TENANT}:bob".encode()]
    assert len([r for r in records if r.topic == "nh.delivery-events"]) == 2

    step = next_step(TopicFanout(topic_send_id=send.id, tenant_id=TENANT, step=4), "nh.topic-fanout")
    assert step.key == str(send.id).encode()
    assert TopicFanout.model_validate_json(step.value).step == 5
