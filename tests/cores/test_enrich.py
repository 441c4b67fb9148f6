"""Enrich's routing: content, preferences, quiet hours and frequency caps, without services."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from notifyhub.cores.enrich import Routed, Template, Variant, route
from notifyhub.cores.records import Headers, Outgoing
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import DeliveryEvent, HoldRequest, Notification
from notifyhub.model.status import Status
from notifyhub.rules.frequency_caps import Counted

TOPICS = TopicNames("pfx", 3)
TENANT = uuid.UUID("6f1d1d7e-8a57-4c57-9d5f-4f0e6c1f9a10")
NOW = datetime(2024, 1, 15, 12, 0, tzinfo=UTC).timestamp()
TRACE = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
ALICE = f"{TENANT}:alice".encode()
BOB = f"{TENANT}:bob".encode()


def notification(recipient: str = "alice", **fields: object) -> Notification:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "tenant_id": TENANT,
        "channel": Channel.EMAIL,
        "recipient_id": recipient,
        "payload": {"subject": "Hi", "body": "there"},
    }
    values.update(fields)
    return Notification.model_validate(values)


def routed_of(
    *notifications: Notification,
    preferences: Mapping[bytes, Mapping[str, Any] | None] | None = None,
    counts: dict[bytes, dict[str, Any]] | None = None,
    templates: Mapping[uuid.UUID, Template | None] | None = None,
    now: float = NOW,
    headers: Headers = (),
) -> Routed:
    return route(
        [(n, headers) for n in notifications],
        preferences=preferences or {},
        counts=counts if counts is not None else {},
        templates=templates or {},
        now=now,
        topics=TOPICS,
    )


def only_event(routed: Routed) -> DeliveryEvent:
    (record,) = routed.records
    assert record.topic == "pfx.delivery-events"
    return DeliveryEvent.model_validate_json(record.value)


def sent(record: Outgoing) -> Notification:
    assert record.topic.startswith("pfx.send.")
    return Notification.model_validate_json(record.value)


def counted_times(counts: dict[bytes, dict[str, Any]], key: bytes, channel: Channel) -> list[float]:
    return Counted.load(counts[key][channel.value]).times()


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


# Content


@pytest.mark.parametrize("mapped_to_none", [False, True], ids=["unknown", "mapped-to-none"])
def test_a_notification_whose_template_is_missing_fails_with_the_reason(mapped_to_none: bool) -> None:
    template_id = uuid.uuid4()
    known: dict[uuid.UUID, Template | None] = {template_id: None} if mapped_to_none else {}
    n = notification(template_id=str(template_id))
    counts: dict[bytes, dict[str, Any]] = {}
    event = only_event(routed_of(n, templates=known, counts=counts))
    assert event.status is Status.FAILED
    assert event.notification_id == n.id
    assert event.reason == f"template {template_id} was deleted or deactivated"
    assert counts == {}


def test_a_template_that_does_not_render_fails_the_notification() -> None:
    template_id = uuid.uuid4()
    n = notification(template_id=str(template_id), payload={"other": 1})
    routed = routed_of(n, templates={template_id: Template(None, "Hello {{ name }}")})
    event = only_event(routed)
    assert event.status is Status.FAILED
    assert event.reason == "template did not render: body: 'name' is undefined"


def test_a_notification_without_template_is_sent_with_the_payloads_subject_and_body() -> None:
    n = notification(payload={"subject": "Your order", "body": "has shipped"})
    (record,) = routed_of(n).records
    assert record.topic == "pfx.send.email"
    assert record.key == ALICE
    assert sent(record) == n.model_copy(update={"subject": "Your order", "body": "has shipped"})


def test_a_payload_without_a_subject_string_gives_no_subject() -> None:
    (record,) = routed_of(notification(payload={"subject": 3, "body": "b"})).records
    assert (sent(record).subject, sent(record).body) == (None, "b")


@pytest.mark.parametrize(
    ("payload", "subject", "body"),
    [
        ({"title": "Title", "body": "Body"}, "Title", "Body"),
        ({"subject": "Subject", "title": "Title", "text": "Text"}, "Subject", "Text"),
        ({"title": 1, "text": "Text", "body": "Body"}, None, "Body"),
    ],
    ids=["title", "subject-first", "body-first"],
)
@pytest.mark.parametrize("channel", list(Channel))
def test_without_template_each_channel_sends_the_payloads_title_and_text(
    channel: Channel, payload: dict[str, Any], subject: str | None, body: str
) -> None:
    (record,) = routed_of(notification(channel=channel, payload=payload)).records
    assert (sent(record).subject, sent(record).body) == (subject, body)


PT_TEMPLATE_ID = uuid.uuid4()
LOCALIZED = Template(
    "Order {{ order }}",
    "Hi {{ name }}",
    {"pt": Variant("Pedido {{ order }}", "Oi {{ name }}"), "pt-PT": Variant(None, "Olá {{ name }}")},
)


@pytest.mark.parametrize(
    ("locale", "subject", "body", "used"),
    [
        ("pt-BR", "Pedido 7", "Oi Ana", "pt"),
        ("pt-pt", None, "Olá Ana", "pt-PT"),
        ("fr", "Order 7", "Hi Ana", None),
        (None, "Order 7", "Hi Ana", None),
    ],
)
def test_a_template_renders_in_the_variant_of_the_notifications_locale(
    locale: str | None, subject: str | None, body: str, used: str | None
) -> None:
    n = notification(template_id=str(PT_TEMPLATE_ID), payload={"name": "Ana", "order": 7}, locale=locale)
    (record,) = routed_of(n, templates={PT_TEMPLATE_ID: LOCALIZED}).records
    assert (sent(record).subject, sent(record).body, sent(record).content_locale) == (
        subject,
        body,
        used,
    )


def test_a_variant_that_does_not_render_fails_naming_its_locale() -> None:
    n = notification(template_id=str(PT_TEMPLATE_ID), payload={"order": 7}, locale="pt-BR")
    event = only_event(routed_of(n, templates={PT_TEMPLATE_ID: LOCALIZED}))
    assert event.status is Status.FAILED
    assert event.reason == "template (locale pt) did not render: body: 'name' is undefined"


def test_a_notification_with_a_template_is_sent_rendered() -> None:
    template_id = uuid.uuid4()
    n = notification(template_id=str(template_id), payload={"name": "Ada", "count": 3})
    template = Template("Hello {{ name }}", "{{ name }}, you have {{ count }} new messages")
    routed = routed_of(n, templates={template_id: template})
    (record,) = routed.records
    assert sent(record) == n.model_copy(
        update={"subject": "Hello Ada", "body": "Ada, you have 3 new messages", "body_html": False}
    )
    assert [channel for channel, _ in routed.renders] == [Channel.EMAIL]


@pytest.mark.parametrize(
    ("channel", "priority", "topic"),
    [
        (Channel.EMAIL, 5, "pfx.send.email"),
        (Channel.SMS, 4, "pfx.send.sms"),
        (Channel.PUSH, 3, "pfx.send.push.priority"),
        (Channel.INAPP, 1, "pfx.send.inapp.priority"),
    ],
)
def test_a_notification_goes_to_the_send_topic_of_its_channel_and_lane(
    channel: Channel, priority: int, topic: str
) -> None:
    (record,) = routed_of(notification(channel=channel, priority=priority)).records
    assert record.topic == topic


# Preferences


def test_a_disabled_channel_drops_the_notification() -> None:
    counts: dict[bytes, dict[str, Any]] = {}
    routed = routed_of(notification(), preferences={ALICE: {"email": {"enabled": False}}}, counts=counts)
    event = only_event(routed)
    assert event.status is Status.DROPPED
    assert event.reason == "the recipient turned the email channel off"
    assert counts.get(ALICE, {}) == {}
    assert (routed.allowed, routed.limited) == (0, 0)


def test_a_channel_left_on_is_sent_when_another_is_disabled() -> None:
    (record,) = routed_of(notification(), preferences={ALICE: {"sms": {"enabled": False}}}).records
    assert record.topic == "pfx.send.email"


def test_a_missing_template_fails_before_the_disabled_channel_drops() -> None:
    n = notification(template_id=str(uuid.uuid4()))
    event = only_event(routed_of(n, preferences={ALICE: {"email": {"enabled": False}}}))
    assert event.status is Status.FAILED


# Quiet hours

PARIS_NIGHT = {"quiet_hours_start": "21:00", "quiet_hours_end": "07:00", "timezone": "Europe/Paris"}


@pytest.mark.parametrize(
    ("now", "ends"),
    [
        # 22:00 in Paris in winter (UTC+1): quiet until 07:00 Paris, 06:00 UTC.
        (at(2024, 1, 15, 21, 0), at(2024, 1, 16, 6, 0)),
        # 22:00 in Paris in summer (UTC+2): quiet until 07:00 Paris, 05:00 UTC.
        (at(2024, 7, 15, 20, 0), at(2024, 7, 16, 5, 0)),
        # 03:00 in Paris: the window that opened the evening before ends at 07:00.
        (at(2024, 1, 16, 2, 0), at(2024, 1, 16, 6, 0)),
    ],
    ids=["winter-evening", "summer-evening", "after-midnight"],
)
def test_quiet_hours_defer_the_notification_until_they_end_in_the_recipients_timezone(
    now: float, ends: float
) -> None:
    n = notification()
    counts: dict[bytes, dict[str, Any]] = {}
    routed = routed_of(n, preferences={ALICE: {"email": PARIS_NIGHT}}, counts=counts, now=now)
    announced, held = routed.records
    event = DeliveryEvent.model_validate_json(announced.value)
    assert (event.status, event.reason) == (Status.DEFERRED, "quiet hours")
    assert held.topic == "pfx.held"
    assert held.key == ALICE
    request = HoldRequest.model_validate_json(held.value)
    assert request.release_at == ends
    assert request.destination == "enrich"
    assert request.notification == n
    assert counts.get(ALICE, {}) == {}
    assert routed.counted == set()


def test_a_time_quiet_in_utc_but_not_in_the_recipients_timezone_is_sent() -> None:
    # 06:30 UTC is 07:30 in Paris: the 21:00-07:00 window there is over.
    routed = routed_of(
        notification(), preferences={ALICE: {"email": PARIS_NIGHT}}, now=at(2024, 1, 15, 6, 30)
    )
    (record,) = routed.records
    assert record.topic == "pfx.send.email"


def test_a_disabled_channel_drops_before_quiet_hours_defer() -> None:
    preference = {**PARIS_NIGHT, "enabled": False}
    routed = routed_of(
        notification(), preferences={ALICE: {"email": preference}}, now=at(2024, 1, 15, 21)
    )
    assert only_event(routed).status is Status.DROPPED


def test_quiet_hours_defer_before_the_cap_is_checked() -> None:
    preference = {**PARIS_NIGHT, "frequency_cap": 1}
    counts: dict[bytes, dict[str, Any]] = {}
    routed_of(notification(), preferences={ALICE: {"email": {"frequency_cap": 1}}}, counts=counts)
    before = copy.deepcopy(counts)
    night = at(2024, 1, 15, 21)
    routed = routed_of(
        notification(), preferences={ALICE: {"email": preference}}, counts=counts, now=night
    )
    announced, held = routed.records
    assert DeliveryEvent.model_validate_json(announced.value).status is Status.DEFERRED
    assert held.topic == "pfx.held"
    assert counts == before


# Frequency caps


def test_the_notification_past_the_recipients_cap_is_dropped_with_the_cap_reason() -> None:
    batch = [notification() for _ in range(3)]
    routed = routed_of(*batch, preferences={ALICE: {"email": {"frequency_cap": 2}}})
    first, second, third = routed.records
    assert [sent(first).id, sent(second).id] == [batch[0].id, batch[1].id]
    event = DeliveryEvent.model_validate_json(third.value)
    assert event.notification_id == batch[2].id
    assert event.status is Status.DROPPED
    assert event.reason == "frequency cap reached: 2 email notifications per 60 min"
    assert (routed.allowed, routed.limited) == (2, 1)


def test_without_a_cap_of_its_own_the_channels_default_cap_applies() -> None:
    routed = routed_of(*(notification(channel=Channel.SMS) for _ in range(4)))
    assert [r.topic for r in routed.records[:3]] == ["pfx.send.sms"] * 3
    event = DeliveryEvent.model_validate_json(routed.records[3].value)
    assert event.reason == "frequency cap reached: 3 sms notifications per 60 min"
    assert (routed.allowed, routed.limited) == (3, 1)


def test_the_preferences_window_bounds_what_the_cap_counts() -> None:
    preferences = {ALICE: {"email": {"frequency_cap": 1, "frequency_window_minutes": 10}}}
    counts: dict[bytes, dict[str, Any]] = {}
    routed_of(notification(), preferences=preferences, counts=counts, now=NOW)
    inside = routed_of(notification(), preferences=preferences, counts=counts, now=NOW + 599)
    assert only_event(inside).reason == "frequency cap reached: 1 email notifications per 10 min"
    after = routed_of(notification(), preferences=preferences, counts=counts, now=NOW + 600)
    assert after.records[0].topic == "pfx.send.email"


def test_counts_are_updated_in_place_and_the_recipient_reported_as_counted() -> None:
    counts: dict[bytes, dict[str, Any]] = {}
    routed = routed_of(notification(), notification(), counts=counts)
    assert counted_times(counts, ALICE, Channel.EMAIL) == [NOW, NOW]
    assert routed.counted == {ALICE}


def test_a_notification_refused_by_the_cap_changes_no_counts_and_counts_no_recipient() -> None:
    preferences = {ALICE: {"email": {"frequency_cap": 1}}}
    counts: dict[bytes, dict[str, Any]] = {}
    routed_of(notification(), preferences=preferences, counts=counts)
    before = copy.deepcopy(counts)
    refused = routed_of(notification(), preferences=preferences, counts=counts, now=NOW + 1)
    assert only_event(refused).status is Status.DROPPED
    assert counts == before
    assert refused.counted == set()


def test_the_same_notification_routed_again_is_sent_and_counted_once() -> None:
    n = notification()
    counts: dict[bytes, dict[str, Any]] = {}
    first = routed_of(n, counts=counts)
    after_first = copy.deepcopy(counts)
    again = routed_of(n, counts=counts, now=NOW + 5)
    assert [sent(r).id for r in first.records + again.records] == [n.id, n.id]
    assert counts == after_first
    assert again.counted == set()


def test_the_same_notification_twice_in_a_batch_is_counted_once() -> None:
    n = notification()
    counts: dict[bytes, dict[str, Any]] = {}
    routed = routed_of(n, n, counts=counts)
    assert len(routed.records) == 2
    assert counted_times(counts, ALICE, Channel.EMAIL) == [NOW]


def test_a_redelivered_notification_passes_even_when_the_cap_is_reached() -> None:
    preferences = {ALICE: {"email": {"frequency_cap": 1}}}
    n = notification()
    counts: dict[bytes, dict[str, Any]] = {}
    routed_of(n, preferences=preferences, counts=counts)
    again = routed_of(n, preferences=preferences, counts=counts, now=NOW + 1)
    assert sent(again.records[0]).id == n.id


def test_each_channel_has_its_own_count() -> None:
    preferences = {ALICE: {"email": {"frequency_cap": 1}, "sms": {"frequency_cap": 1}}}
    routed = routed_of(notification(), notification(channel=Channel.SMS), preferences=preferences)
    assert [r.topic for r in routed.records] == ["pfx.send.email", "pfx.send.sms"]


# Recipients, counters, headers


def test_two_recipients_decisions_do_not_affect_each_other() -> None:
    preferences = {ALICE: {"email": {"frequency_cap": 1}, "sms": {"enabled": False}}}
    a1, b1, a2, b2 = (notification(r) for r in ("alice", "bob", "alice", "bob"))
    a3, b3 = notification("alice", channel=Channel.SMS), notification("bob", channel=Channel.SMS)
    counts: dict[bytes, dict[str, Any]] = {}
    routed = routed_of(a1, b1, a2, b2, a3, b3, preferences=preferences, counts=counts)
    outcomes = [
        (r.key, sent(r).id)
        if r.topic.startswith("pfx.send.")
        else DeliveryEvent.model_validate_json(r.value).status
        for r in routed.records
    ]
    assert outcomes == [
        (ALICE, a1.id),
        (BOB, b1.id),
        Status.DROPPED,  # alice's cap of 1
        (BOB, b2.id),
        Status.DROPPED,  # alice turned sms off
        (BOB, b3.id),
    ]
    assert counted_times(counts, ALICE, Channel.EMAIL) == [NOW]
    assert counted_times(counts, BOB, Channel.EMAIL) == [NOW, NOW]
    assert routed.counted == {ALICE, BOB}
    assert (routed.allowed, routed.limited) == (4, 1)


def test_the_headers_travel_with_every_record() -> None:
    template_id = uuid.uuid4()
    batch = [
        notification(),  # sent
        notification(template_id=str(template_id)),  # failed: template gone
        notification("bob"),  # deferred, and held
        notification("carol"),  # dropped: channel off
    ]
    preferences: dict[bytes, Mapping[str, Any] | None] = {
        BOB: {"email": PARIS_NIGHT},
        f"{TENANT}:carol".encode(): {"email": {"enabled": False}},
    }
    routed = routed_of(*batch, preferences=preferences, now=at(2024, 1, 15, 21), headers=TRACE)
    assert len(routed.records) == 5
    assert all(record.headers == TRACE for record in routed.records)
