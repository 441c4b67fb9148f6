"""What a closed digest window and an escalation step become (pure logic)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from notifyhub.cores import digests, escalations
from notifyhub.cores.enrich import route
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import DigestRule, EscalationOf, EscalationStep, HoldRequest, Notification
from notifyhub.model.status import Status

TENANT = uuid.uuid4()
TOPICS = TopicNames("pfx", 3)


def item(
    body: str, priority: int = 5, subject: str | None = "New comment", **rule: object
) -> Notification:
    payload = {"body": body} if subject is None else {"subject": subject, "body": body}
    return Notification(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        channel=Channel.EMAIL,
        recipient_id="ada",
        recipient_address="ada@example.com",
        payload=payload,
        priority=priority,
        # ``rule`` holds only DigestRule's optional fields (the test's keyword arguments).
        digest=DigestRule(key="comments", window_seconds=60, **rule),  # type: ignore[arg-type]
    )


def test_a_digest_without_templates_is_made_of_its_items_texts() -> None:
    items = [item("first", priority=7), item("second", priority=2), item("third")]
    message = digests.digest_message(digests.digest_id(items[0].id), items)
    assert message.id == digests.digest_id(items[0].id)
    assert message.type == "digest:comments"
    assert message.priority == 2  # the most urgent item's
    assert message.digest is None  # it is not collected again
    assert message.payload["count"] == 3
    assert [i["id"] for i in message.payload["items"]] == [str(i.id) for i in items]
    assert message.payload["subject"] == "New comment (+2 more)"
    assert message.payload["body"] == "first\nsecond\nthird"


def test_a_digest_is_rendered_with_the_rule_s_template_else_the_first_item_s() -> None:
    rule_template = str(uuid.uuid4())
    with_rule = [item("a", template_id=rule_template)]
    assert digests.digest_message(uuid.uuid4(), with_rule).template_id == rule_template
    own = item("b").model_copy(update={"template_id": "11111111-1111-1111-1111-111111111111"})
    message = digests.digest_message(uuid.uuid4(), [own])
    assert message.template_id == own.template_id
    assert "body" not in message.payload  # the template makes the texts


def test_the_item_s_digested_event_is_the_same_each_time() -> None:
    one = item("x")
    digest = digests.digest_id(one.id)
    first, again = digests.digested_event(one, digest, 1.0), digests.digested_event(one, digest, 2.0)
    assert first.event_id == again.event_id
    assert (first.status, first.related_notification_id) == (Status.DIGESTED, digest)


def test_enrich_sends_an_item_with_a_digest_rule_to_its_window() -> None:
    one = item("x")
    routed = route([(one, ())], preferences={}, counts={}, templates={}, now=100.0, topics=TOPICS)
    [record] = routed.records
    assert record.topic == TOPICS.held
    request = HoldRequest.model_validate_json(record.value)
    assert (request.destination, request.release_at) == ("digest", 160.0)


def in_app(*steps: EscalationStep) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        channel=Channel.INAPP,
        recipient_id="ada",
        payload={"title": "Shipped", "body": "Tomorrow", "order": 7},
        subject="Shipped",
        body="Tomorrow",
        escalate=list(steps),
    )


def test_a_step_without_a_template_says_what_the_in_app_message_said() -> None:
    root = in_app(
        EscalationStep(after_seconds=60, channel=Channel.EMAIL),
        EscalationStep(after_seconds=600, channel=Channel.SMS, template_id="t"),
    )
    step = escalations.step_message(root)
    assert step.id == uuid.uuid5(escalations.STEP_NAMESPACE, f"{root.id}:1")
    assert step.channel is Channel.EMAIL
    assert step.payload == {"subject": "Shipped", "body": "Tomorrow"}
    assert root.escalate is not None
    assert step.escalate == [root.escalate[1]]
    sent = escalations.as_step(step, root)
    assert sent.escalation_of == EscalationOf(notification_id=root.id, step=1)
    # The second step is of the same chain, with the in-app payload for its template.
    second = escalations.step_message(sent.model_copy(update={"payload": root.payload}))
    assert second.id == uuid.uuid5(escalations.STEP_NAMESPACE, f"{root.id}:2")
    assert (second.template_id, second.payload["order"], second.escalate) == ("t", 7, None)


def test_a_delivered_message_with_steps_left_is_held_until_the_next_one_is_due() -> None:
    root = in_app(EscalationStep(after_seconds=60, channel=Channel.EMAIL))
    hold = escalations.next_step_hold(TOPICS, root, 1000.0)
    assert hold is not None
    request = HoldRequest.model_validate_json(hold.value)
    assert (request.destination, request.release_at) == ("escalate", 1060.0)
    assert escalations.next_step_hold(TOPICS, root.model_copy(update={"escalate": None}), 0.0) is None


def test_chain_events_are_reported_on_the_in_app_notification_once_per_step() -> None:
    root = in_app(EscalationStep(after_seconds=0, channel=Channel.SMS))
    step = escalations.as_step(escalations.step_message(root), root)
    stopped = escalations.chain_event(step, "escalation_stopped", "seen", 5.0)
    assert stopped.notification_id == root.id
    assert stopped.channel is Channel.INAPP
    assert stopped.occurred_at == datetime.fromtimestamp(5.0, UTC)
    assert stopped.event_id == escalations.chain_event(step, "escalation_stopped", "seen", 9.0).event_id
