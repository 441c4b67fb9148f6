"""What each provider outcome leads to: status events, retries held for later, dead letters."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import pytest

from notifyhub.cores.send import Consequences, RetryPolicy, consequences
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import DeliveryEvent, HoldRequest, Notification
from notifyhub.model.outcomes import Outcome, Result
from notifyhub.model.status import Status

TOPICS = TopicNames("pfx", 3)
TENANT = uuid.UUID("6f1d1d7e-8a57-4c57-9d5f-4f0e6c1f9a10")
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC).timestamp()
POLICY = RetryPolicy(max_attempts=5, base_seconds=2.0, max_seconds=60.0)
TRACE = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)


def notification(**fields: object) -> Notification:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "tenant_id": TENANT,
        "channel": Channel.EMAIL,
        "recipient_id": "u1",
        "recipient_address": "u1@example.com",
        "payload": {"body": "hello"},
        "subject": "Hi",
        "body": "hello",
    }
    values.update(fields)
    return Notification.model_validate(values)


def outcome_of(n: Notification, outcome: Outcome, policy: RetryPolicy = POLICY) -> Consequences:
    return consequences([(n, outcome, TRACE)], policy, NOW, TOPICS)


def only_event(done: Consequences) -> DeliveryEvent:
    (event, headers), *others = done.events
    assert others == []
    assert headers == TRACE
    return event


def only_hold(done: Consequences) -> HoldRequest:
    (record,) = done.holds
    assert record.topic == "pfx.held"
    return HoldRequest.model_validate_json(record.value)


def test_an_accepted_notification_gets_one_sent_event_with_its_provider_and_message_id() -> None:
    n = notification()
    done = outcome_of(n, Outcome(Result.DELIVERED, provider="ses", provider_message_id="m-1"))
    event = only_event(done)
    # SES took it; its receipt (if SES events are published) says whether it was delivered.
    assert event.status is Status.SENT
    assert event.notification_id == n.id
    assert (event.provider, event.provider_message_id) == ("ses", "m-1")
    assert (done.holds, done.letters) == ([], [])


@pytest.mark.parametrize("provider", ["inapp", "sink"])
def test_where_acceptance_is_the_delivery_the_status_is_delivered(provider: str) -> None:
    done = outcome_of(
        notification(), Outcome(Result.DELIVERED, provider=provider, provider_message_id="m")
    )
    assert only_event(done).status is Status.DELIVERED


@pytest.mark.parametrize(("retry_after", "wait"), [(0.0, 1.0), (0.3, 1.0), (42.5, 42.5)])
def test_when_no_provider_was_tried_it_retries_the_same_attempt_once_a_breaker_may_probe(
    retry_after: float, wait: float
) -> None:
    n = notification(attempt=2)
    unavailable = Outcome(
        Result.UNAVAILABLE, reason="ses: circuit breaker open", retry_after=retry_after
    )
    done = outcome_of(n, unavailable)
    event = only_event(done)
    assert event.status is Status.RETRYING
    assert event.reason is not None and event.reason.startswith("ses: circuit breaker open")
    request = only_hold(done)
    assert request.destination == "send"
    assert request.release_at == NOW + wait
    assert request.notification == n
    assert done.holds[0].key == n.recipient_key
    assert done.letters == []


@pytest.mark.parametrize(
    ("attempt", "backoff"),
    [(1, 2.0), (3, 8.0), (4, 16.0), (7, 60.0)],  # base 2 s doubling, at most 60 s
)
@pytest.mark.parametrize("draw", [0.0, 0.5, 0.999999])
def test_a_temporary_failure_with_attempts_left_retries_the_next_attempt_after_a_jittered_backoff(
    attempt: int, backoff: float, draw: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "random", lambda: draw)
    policy = RetryPolicy(max_attempts=8, base_seconds=2.0, max_seconds=60.0)
    n = notification(attempt=attempt)
    done = outcome_of(n, Outcome(Result.TEMPORARY, provider="ses", reason="ses: 503"), policy)
    event = only_event(done)
    assert event.status is Status.RETRYING
    assert event.attempt == attempt
    assert event.reason is not None and event.reason.startswith(
        f"attempt {attempt} of 8 failed: ses: 503"
    )
    request = only_hold(done)
    assert request.destination == "send"
    assert request.notification == n.model_copy(update={"attempt": attempt + 1})
    assert NOW + backoff / 2 <= request.release_at <= NOW + backoff
    assert done.letters == []


def test_the_backoff_is_jittered_between_half_and_all_of_its_step() -> None:
    n = notification(attempt=3)
    releases = {
        only_hold(outcome_of(n, Outcome(Result.TEMPORARY, reason="timeout"))).release_at
        for _ in range(50)
    }
    assert all(NOW + 4.0 <= release <= NOW + 8.0 for release in releases)
    assert len(releases) > 1


def test_a_temporary_failure_on_the_last_attempt_fails_and_leaves_a_dead_letter() -> None:
    n = notification(attempt=POLICY.max_attempts, priority=2)
    done = outcome_of(n, Outcome(Result.TEMPORARY, provider="ses", reason="ses: 503"))
    event = only_event(done)
    assert event.status is Status.FAILED
    assert event.reason == "gave up after 5 attempts: ses: 503"
    assert done.holds == []
    (letter,) = done.letters
    assert letter.source_topic == "pfx.send.email.priority"
    assert letter.reason == event.reason
    assert (letter.notification_id, letter.tenant_id, letter.channel) == (n.id, TENANT, Channel.EMAIL)
    assert letter.attempts == 5
    assert letter.message_key == n.recipient_key
    assert Notification.model_validate_json(letter.message) == n.model_copy(update={"attempt": 1})


@pytest.mark.parametrize(("priority", "topic"), [(5, "pfx.send.sms"), (3, "pfx.send.sms.priority")])
def test_a_dead_letters_source_topic_is_the_send_topic_of_its_lane(priority: int, topic: str) -> None:
    n = notification(channel=Channel.SMS, priority=priority, attempt=POLICY.max_attempts)
    (letter,) = outcome_of(n, Outcome(Result.TEMPORARY, reason="twilio: 500")).letters
    assert letter.source_topic == topic


@pytest.mark.parametrize("attempt", [1, 3])
def test_a_permanent_refusal_fails_at_once_with_the_providers_reason(attempt: int) -> None:
    n = notification(attempt=attempt)
    refused = Outcome(Result.FAILED, provider="ses", reason="ses (MessageRejected): address blocked")
    done = outcome_of(n, refused)
    event = only_event(done)
    assert event.status is Status.FAILED
    assert event.reason == "ses (MessageRejected): address blocked"
    assert event.provider == "ses"
    assert done.holds == []
    (letter,) = done.letters
    assert letter.reason == "ses (MessageRejected): address blocked"
    assert letter.attempts == attempt
    assert letter.source_topic == "pfx.send.email"
    assert Notification.model_validate_json(letter.message) == n.model_copy(update={"attempt": 1})


def test_a_refusal_because_the_recipient_opted_out_fails_and_names_the_number_to_suppress() -> None:
    n = notification(channel=Channel.SMS, recipient_address="+15005550004", subject=None)
    refused = Outcome(Result.FAILED, provider="twilio", reason="twilio (21610): STOP", opted_out=True)
    done = outcome_of(n, refused)
    assert only_event(done).status is Status.FAILED
    assert done.opted_out == ["+15005550004"]
    assert len(done.letters) == 1


def test_other_refusals_and_failures_suppress_nothing() -> None:
    n = notification(channel=Channel.SMS, recipient_address="+15005550001", subject=None)
    for outcome in (
        Outcome(Result.FAILED, provider="twilio", reason="twilio (21211): invalid number"),
        Outcome(Result.TEMPORARY, provider="twilio", reason="twilio: 503"),
        Outcome(Result.DELIVERED, provider="twilio", provider_message_id="SM1"),
    ):
        assert outcome_of(n, outcome).opted_out == []


def test_a_refusal_without_a_reason_says_refused() -> None:
    done = outcome_of(notification(), Outcome(Result.FAILED, provider="ses"))
    assert only_event(done).reason == "refused"
    assert done.letters[0].reason == "refused"


def test_the_headers_given_travel_with_every_event_and_hold() -> None:
    other = (("traceparent", b"00-11111111111111111111111111111111-2222222222222222-01"),)
    batch = [
        (notification(), Outcome(Result.DELIVERED, provider="ses", provider_message_id="m"), TRACE),
        (notification(), Outcome(Result.UNAVAILABLE, reason="open", retry_after=5), other),
        (notification(), Outcome(Result.TEMPORARY, reason="503"), TRACE),
        (notification(), Outcome(Result.FAILED, reason="no"), other),
    ]
    done = consequences(batch, POLICY, NOW, TOPICS)
    assert [(event.notification_id, headers) for event, headers in done.events] == [
        (n.id, headers) for n, _, headers in batch
    ]
    assert [(HoldRequest.model_validate_json(h.value).held_id, h.headers) for h in done.holds] == [
        (str(batch[1][0].id), other),
        (str(batch[2][0].id), TRACE),
    ]
    assert [letter.notification_id for letter in done.letters] == [batch[3][0].id]
