"""Where a new notification goes first: enrich now, or held until its scheduled time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notifyhub.cores.entry import entry_event, entry_records
from notifyhub.cores.records import PERSISTED_HEADER, Headers, Outgoing
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import DeliveryEvent, HoldRequest, Notification
from notifyhub.model.status import Status

TOPICS = TopicNames("pfx", 3)
TENANT = uuid.UUID("6f1d1d7e-8a57-4c57-9d5f-4f0e6c1f9a10")
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp()
TRACE = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)


def notification(**fields: object) -> Notification:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "tenant_id": TENANT,
        "channel": Channel.EMAIL,
        "recipient_id": "u1",
        "payload": {"body": "hello"},
    }
    values.update(fields)
    return Notification.model_validate(values)


def records_for(n: Notification, headers: Headers = (), *, persisted: bool = False) -> list[Outgoing]:
    return entry_records(TOPICS, n, entry_event(n, NOW), headers, persisted=persisted)


@pytest.mark.parametrize(
    "scheduled_at",
    [None, datetime.fromtimestamp(NOW, UTC) - timedelta(minutes=5)],
    ids=["unscheduled", "scheduled-in-the-past"],
)
def test_a_notification_due_now_is_queued_and_goes_to_enrich(scheduled_at: datetime | None) -> None:
    n = notification(scheduled_at=scheduled_at)
    event = entry_event(n, NOW)
    assert event.status is Status.QUEUED
    assert event.notification_id == n.id
    announced, onward = entry_records(TOPICS, n, event, persisted=False)
    assert announced.topic == "pfx.delivery-events"
    assert announced.key == str(n.id).encode()
    assert DeliveryEvent.model_validate_json(announced.value) == event
    assert onward.topic == "pfx.enrich"
    assert onward.key == f"{TENANT}:u1".encode()
    assert Notification.model_validate_json(onward.value) == n


@pytest.mark.parametrize(("priority", "topic"), [(4, "pfx.enrich"), (3, "pfx.enrich.priority")])
def test_a_queued_notification_takes_the_enrich_lane_of_its_priority(priority: int, topic: str) -> None:
    _, onward = records_for(notification(priority=priority))
    assert onward.topic == topic


def test_a_notification_scheduled_ahead_is_held_until_then_for_enrich() -> None:
    later = datetime.fromtimestamp(NOW, UTC) + timedelta(hours=3)
    n = notification(scheduled_at=later, priority=2)
    event = entry_event(n, NOW)
    assert event.status is Status.SCHEDULED
    announced, held = entry_records(TOPICS, n, event, persisted=False)
    assert DeliveryEvent.model_validate_json(announced.value).status is Status.SCHEDULED
    assert held.topic == "pfx.held"
    assert held.key == n.recipient_key
    request = HoldRequest.model_validate_json(held.value)
    assert request.release_at == later.timestamp()
    assert request.destination == "enrich"
    assert request.notification == n


def test_the_entry_event_id_is_the_same_for_the_same_notification_and_status() -> None:
    n = notification()
    assert entry_event(n, NOW).event_id == entry_event(n, NOW + 60).event_id
    assert entry_event(n, NOW).event_id != entry_event(notification(), NOW).event_id


def test_the_entry_event_id_differs_between_queued_and_scheduled() -> None:
    n = notification(scheduled_at=datetime.fromtimestamp(NOW, UTC) + timedelta(hours=1))
    scheduled = entry_event(n, NOW)
    queued = entry_event(n, NOW + 2 * 3600)
    assert (scheduled.status, queued.status) == (Status.SCHEDULED, Status.QUEUED)
    assert scheduled.event_id != queued.event_id


@pytest.mark.parametrize("hours_ahead", [0, 1], ids=["queued", "scheduled"])
def test_persisted_marks_the_event_record_only(hours_ahead: int) -> None:
    n = notification(scheduled_at=datetime.fromtimestamp(NOW, UTC) + timedelta(hours=hours_ahead))
    announced, onward = records_for(n, TRACE, persisted=True)
    assert (PERSISTED_HEADER, b"1") in announced.headers
    assert PERSISTED_HEADER not in dict(onward.headers)


def test_without_persisted_no_record_carries_the_persisted_header() -> None:
    records = records_for(notification(), TRACE, persisted=False)
    assert all(PERSISTED_HEADER not in dict(record.headers) for record in records)


@pytest.mark.parametrize("hours_ahead", [0, 1], ids=["queued", "scheduled"])
@pytest.mark.parametrize("persisted", [False, True])
def test_the_trace_headers_are_on_every_record(hours_ahead: int, persisted: bool) -> None:
    n = notification(scheduled_at=datetime.fromtimestamp(NOW, UTC) + timedelta(hours=hours_ahead))
    records = records_for(n, TRACE, persisted=persisted)
    assert len(records) == 2
    assert all(set(TRACE) <= set(record.headers) for record in records)
