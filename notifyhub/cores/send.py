"""The send stage's decisions: what each provider outcome leads to.

Accepted by the provider → ``sent`` (``delivered`` for the in-app inbox and the sink,
where acceptance is delivery), and, for a notification with escalation steps left, the
hold that sends the next one unless it is seen or read first. Nothing tried because
every breaker is open → ``retrying`` without spending an attempt, held until a breaker
lets a probe through. A temporary failure with attempts left → ``retrying``, held for a
backoff with jitter, then back to the sender with one attempt more. Otherwise (a
permanent refusal, the last attempt, or a bug) → ``failed``, and a dead letter that a
replay sends from the first attempt again. A refusal because the recipient opted out of
our sender (Twilio's 21610) also suppresses the address, as an inbound STOP would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from notifyhub.cores.escalations import next_step_hold
from notifyhub.cores.held import hold_record
from notifyhub.cores.records import Headers, Outgoing
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import DeadLetter, DeliveryEvent, Destination, Notification
from notifyhub.model.outcomes import Outcome, Result
from notifyhub.model.status import Status
from notifyhub.rules.backoff import retry_delay

# Providers whose acceptance is the delivery itself (the message is in the inbox, or in the
# sink's record); every other provider's acceptance is ``sent``, and its receipt, if any,
# says what followed.
DELIVERING_PROVIDERS = frozenset({"inapp", "sink"})

# A notification waiting for a breaker to half-open looks again at least this late, so a
# breaker that is about to probe does not spin the held stage.
MIN_BREAKER_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float


@dataclass
class Consequences:
    """What a batch's outcomes lead to: status events (written to PostgreSQL before
    anything is produced), holds for retries, and dead letters."""

    events: list[tuple[DeliveryEvent, Headers]] = field(default_factory=list)
    holds: list[Outgoing] = field(default_factory=list)
    # Holds of delivered notifications until their next escalation step is due.
    escalations: list[Outgoing] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    # Addresses the provider says opted out of our sender: suppressed for every tenant.
    opted_out: list[str] = field(default_factory=list)


def consequences(
    outcomes: Sequence[tuple[Notification, Outcome, Headers]],
    policy: RetryPolicy,
    now: float,
    topics: TopicNames,
) -> Consequences:
    """Each outcome's status event, and its retry or dead letter."""
    done = Consequences()
    for notification, outcome, headers in outcomes:
        _add(done, notification, outcome, headers, policy, now, topics)
    return done


def _add(
    done: Consequences,
    notification: Notification,
    outcome: Outcome,
    headers: Headers,
    policy: RetryPolicy,
    now: float,
    topics: TopicNames,
) -> None:
    attempt = notification.attempt
    details: dict[str, Any] = {
        "provider": outcome.provider,
        "provider_message_id": outcome.provider_message_id,
        "attempt": attempt,
        "locale": notification.content_locale,
    }
    if outcome.result is Result.DELIVERED:
        status = Status.DELIVERED if outcome.provider in DELIVERING_PROVIDERS else Status.SENT
        event = DeliveryEvent.about(notification, status, reason=outcome.reason, **details)
        done.events.append((event, headers))
        escalation = next_step_hold(topics, notification, now, headers)
        if escalation is not None:
            done.escalations.append(escalation)
        return
    retry: tuple[Notification, float, str] | None = None
    if outcome.result is Result.UNAVAILABLE:
        # Nothing was tried, so no attempt is spent: wait for a breaker to probe.
        wait = max(MIN_BREAKER_WAIT_SECONDS, outcome.retry_after)
        retry = (notification, wait, f"{outcome.reason}; next try in {wait:.0f}s")
    elif outcome.result is Result.TEMPORARY and attempt < policy.max_attempts:
        wait = retry_delay(attempt, policy.base_seconds, policy.max_seconds)
        reason = f"attempt {attempt} of {policy.max_attempts} failed: {outcome.reason}"
        following = notification.model_copy(update={"attempt": attempt + 1})
        retry = (following, wait, f"{reason}; retrying in {wait:.1f}s")
    if retry is not None:
        following, wait, reason = retry
        event = DeliveryEvent.about(notification, Status.RETRYING, reason=reason, **details)
        done.events.append((event, headers))
        done.holds.append(hold_record(topics, following, now + wait, Destination.SEND, headers))
        return
    if outcome.result is Result.TEMPORARY:
        reason = f"gave up after {attempt} attempts: {outcome.reason}"
    else:
        reason = outcome.reason or "refused"
    event = DeliveryEvent.about(notification, Status.FAILED, reason=reason, **details)
    done.events.append((event, headers))
    if outcome.opted_out and notification.recipient_address:
        done.opted_out.append(notification.recipient_address)
    done.letters.append(
        DeadLetter(
            source_topic=topics.send(notification.channel, notification.priority),
            reason=reason,
            tenant_id=notification.tenant_id,
            channel=notification.channel,
            notification_id=notification.id,
            attempts=attempt,
            message_key=notification.recipient_key,
            # As a replay should send it: from the first attempt again.
            message=notification.model_copy(update={"attempt": 1}).to_bytes(),
        )
    )
