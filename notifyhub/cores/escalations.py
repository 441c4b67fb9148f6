"""Escalation: if an in-app message is not seen or read in time, try the next channel.

An in-app notification may carry ``escalate: [{after_seconds, channel, template_id?}]``.
When it is delivered, the send stage holds it until ``after_seconds`` later (the held
table, destination ``escalate``); each step sent that has steps left is held the same way
from its own delivery. On release the chain's in-app message is checked in PostgreSQL:
seen or read, the chain stops (``escalation_stopped``); otherwise the step is sent as a
notification of its own, whose id is derived from the chain and the step, so a release
made twice is one step. The inbox tells the held stage when such a message is seen or
read, and the waiting step is dropped there and then.

A step without a template sends what the in-app message said (its rendered title and
body); with one, the template is rendered with the in-app notification's payload. Each
step sent, and the chain stopped, are logged on the in-app notification and reported to
webhooks (``notification.escalated``, ``notification.escalation_stopped``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from notifyhub.cores.held import hold_record
from notifyhub.cores.records import Headers, Outgoing
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import (
    DeliveryEvent,
    Destination,
    EscalationOf,
    IntakeMessage,
    Notification,
    Occurrence,
)
from notifyhub.model.status import Status

STEP_NAMESPACE = uuid.UUID("e5ca1a7e-3b7a-4c8e-9d55-657363616c61")
OCCURRENCE_NAMESPACE = uuid.UUID("e5ca1a7e-3b7a-4c8e-9d55-6f6363757272")


def chain_of(notification: Notification) -> uuid.UUID:
    """The in-app notification whose being seen or read stops this notification's chain."""
    return notification.escalation_of.notification_id if notification.escalation_of else notification.id


def next_step_number(notification: Notification) -> int:
    return notification.escalation_of.step + 1 if notification.escalation_of else 1


def next_step_hold(
    topics: TopicNames, sent: Notification, now: float, headers: Headers = ()
) -> Outgoing | None:
    """After ``sent`` was delivered: the hold that sends its next step, if it has one."""
    if not sent.escalate:
        return None
    return hold_record(topics, sent, now + sent.escalate[0].after_seconds, Destination.ESCALATE, headers)


def step_message(sent: Notification) -> IntakeMessage:
    """The next step of ``sent``'s chain, as a notification to accept (its address and
    template still to resolve)."""
    assert sent.escalate
    step, later = sent.escalate[0], sent.escalate[1:]
    number = next_step_number(sent)
    chain = chain_of(sent)
    payload = dict(sent.payload)
    if step.template_id is None:
        # What the in-app message said, as the step's texts.
        payload = {"subject": sent.subject, "body": sent.body or ""}
        if sent.subject is None:
            del payload["subject"]
    return IntakeMessage.model_construct(
        v=2,
        id=uuid.uuid5(STEP_NAMESPACE, f"{chain}:{number}"),
        tenant_id=sent.tenant_id,
        channel=step.channel,
        recipient_id=sent.recipient_id,
        recipient_address=None,
        type=sent.type,
        template_id=step.template_id,
        payload=payload,
        priority=sent.priority,
        idempotency_key=None,
        scheduled_at=None,
        locale=sent.locale,
        category=sent.category,
        digest=None,
        escalate=list(later) or None,
    )


def as_step(message: IntakeMessage, sent: Notification) -> Notification:
    """The step's notification, knowing which chain and step it is."""
    fields = message.model_dump(exclude={"v"})
    fields["escalation_of"] = EscalationOf(notification_id=chain_of(sent), step=next_step_number(sent))
    return Notification.model_validate(fields)


def chain_event(
    sent: Notification,
    occurrence: Occurrence,
    reason: str,
    now: float,
    step: uuid.UUID | None = None,
) -> DeliveryEvent:
    """What the chain's in-app notification logs and reports: a step sent, or the chain
    stopped. The same event each time it is made for this step of this chain."""
    chain = chain_of(sent)
    return DeliveryEvent(
        event_id=uuid.uuid5(OCCURRENCE_NAMESPACE, f"{chain}:{next_step_number(sent)}:{occurrence}"),
        notification_id=chain,
        tenant_id=sent.tenant_id,
        channel=Channel.INAPP,  # the chain's first message is in-app
        recipient_id=sent.recipient_id,
        status=Status.DELIVERED,
        occurred_at=datetime.fromtimestamp(now, UTC),
        reason=reason,
        occurrence=occurrence,
        related_notification_id=step,
    )


def step_reason(sent: Notification, step_id: uuid.UUID) -> str:
    assert sent.escalate  # a step is sent only for a notification with steps left
    channel = sent.escalate[0].channel
    return f"not seen or read: step {next_step_number(sent)} sent to {channel} (notification {step_id})"
