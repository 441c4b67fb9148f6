"""Priority means what it means in NotifyHub (1 the most urgent, 10 the least), on every path
in, and version-1 messages keep theirs across the upgrade (pure logic, no services)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from notifyhub.cores.intake import Rejected, as_notification, parse
from notifyhub.kafka.topics import Lane, TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import HoldRequest, IntakeMessage, Notification
from notifyhub.runtime.settings import Settings

TENANT = "6f1d1d7e-8a57-4c57-9d5f-4f0e6c1f9a10"
NOW = time.time()


def record(**fields: object) -> bytes:
    """An intake record's value; ``v=None`` leaves ``v`` out."""
    message = {
        "v": 2,
        "tenant_id": TENANT,
        "channel": "inapp",
        "recipient_id": "u1",
        "payload": {"body": "x"},
    }
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not None}).encode()


def notification_json(**fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "tenant_id": TENANT,
        "channel": "email",
        "recipient_id": "u1",
    }
    values.update(fields)
    return values


# The intake contract


@pytest.mark.parametrize("priority", range(1, 11))
def test_version_2_keeps_the_priority_it_is_given(priority: int) -> None:
    assert parse(record(priority=priority), "t:0:1", NOW).priority == priority


@pytest.mark.parametrize(("old", "new"), [(10, 1), (9, 2), (8, 3), (5, 6), (1, 10)])
def test_version_1_priorities_are_turned_around(old: int, new: int) -> None:
    message = parse(record(v=1, priority=old), "t:0:1", NOW)
    assert (message.v, message.priority) == (2, new)


def test_a_record_without_a_version_is_version_1() -> None:
    assert parse(record(v=None, priority=10), "t:0:1", NOW).priority == 1


@pytest.mark.parametrize("v", [None, 1, 2])
def test_a_record_without_a_priority_gets_the_default_in_every_version(v: int | None) -> None:
    assert parse(record(v=v), "t:0:1", NOW).priority == 5


def test_a_version_1_priority_in_a_form_validation_accepts_is_turned_around_too() -> None:
    assert parse(record(v=1, priority="9"), "t:0:1", NOW).priority == 2


@pytest.mark.parametrize("v", [1, 2])
@pytest.mark.parametrize("priority", [0, 11, "urgent"])
def test_a_priority_outside_1_to_10_is_refused_as_given(v: int, priority: object) -> None:
    with pytest.raises(Rejected, match="priority"):
        parse(record(v=v, priority=priority), "t:0:1", NOW)


def test_a_converted_message_is_never_turned_around_again() -> None:
    message = parse(record(v=1, priority=9), "t:0:1", NOW)
    assert IntakeMessage.from_record(message.to_bytes()) == message
    assert as_notification(message).priority == 2


def test_a_message_built_in_code_is_version_2() -> None:
    """The HTTP API builds its intake messages without ``v``: NotifyHub's meaning."""
    message = IntakeMessage(
        tenant_id=uuid.UUID(TENANT), channel=Channel.INAPP, recipient_id="u1", priority=1
    )
    assert (message.v, message.priority) == (2, 1)
    assert json.loads(message.to_bytes())["v"] == 2


def test_the_published_contract_says_a_record_without_v_is_version_1() -> None:
    v = IntakeMessage.model_json_schema()["properties"]["v"]
    assert v["default"] == 1
    assert v["enum"] == [1, 2]


# Notifications in flight (topics) and held (the held table) across the upgrade


def test_a_version_1_notification_on_a_topic_is_read_with_its_priority_turned_around() -> None:
    n = Notification.model_validate_json(json.dumps(notification_json(priority=9)))
    assert (n.v, n.priority) == (2, 2)
    assert json.loads(n.to_bytes())["v"] == 2
    assert Notification.model_validate_json(n.to_bytes()) == n


def test_a_version_1_notification_without_a_priority_keeps_the_default() -> None:
    assert Notification.model_validate(notification_json()).priority == 5


def test_a_version_2_notification_keeps_its_priority() -> None:
    assert Notification.model_validate(notification_json(v=2, priority=9)).priority == 9


def test_a_notification_without_a_version_is_the_current_one() -> None:
    """Every notification on a topic or in a table says its version; code builds version 2."""
    without_v = {k: v for k, v in notification_json(priority=9).items() if k != "v"}
    assert Notification.model_validate(without_v).priority == 9


def test_a_held_version_1_notification_is_released_with_its_priority_turned_around() -> None:
    hold = {
        "v": 1,
        "kind": "hold",
        "notification": notification_json(priority=10),
        "release_at": NOW,
        "destination": "enrich",
    }
    request = HoldRequest.model_validate_json(json.dumps(hold))
    assert request.notification is not None
    assert request.notification.priority == 1


# Lanes


@pytest.mark.parametrize(
    ("priority", "lane"), [(1, Lane.PRIORITY), (3, Lane.PRIORITY), (4, Lane.NORMAL), (10, Lane.NORMAL)]
)
def test_the_most_urgent_take_the_priority_lane(priority: int, lane: Lane) -> None:
    assert TopicNames("pfx", 3).lane_for(priority) is lane


def test_by_default_1_to_3_take_the_priority_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFYHUB_PRIORITY_THRESHOLD", raising=False)
    topics = TopicNames.of(Settings())
    assert [p for p in range(1, 11) if topics.lane_for(p) is Lane.PRIORITY] == [1, 2, 3]


def test_the_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFYHUB_PRIORITY_THRESHOLD", "1")
    topics = TopicNames.of(Settings())
    assert topics.enrich(1) == topics.named("enrich.priority")
    assert topics.enrich(2) == topics.named("enrich")
