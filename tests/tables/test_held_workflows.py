"""Digest windows and escalation holds in the held table, tick by tick.

Pure logic: the Faust table is replaced by a dict (the workflow tests run the real one).
"""

from __future__ import annotations

import uuid

from notifyhub.cores import digests
from notifyhub.model.channels import Channel
from notifyhub.model.messages import (
    Destination,
    DigestRule,
    EscalationOf,
    EscalationStep,
    HoldRequest,
    Notification,
)
from notifyhub.tables.held import HeldTable, Released
from tests.support.held import KEY, PARTITION

TENANT = uuid.uuid4()


def item(
    key: str = "comments", window: int = 60, max_items: int = 100, **payload: object
) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        channel=Channel.EMAIL,
        recipient_id="recipient",
        recipient_address="r@example.com",
        payload={"body": "a comment", **payload},
        digest=DigestRule(key=key, window_seconds=window, max_items=max_items),
    )


def collect(held: HeldTable, notification: Notification, now: float) -> uuid.UUID:
    assert notification.digest is not None
    request = HoldRequest(
        notification=notification,
        release_at=now + notification.digest.window_seconds,
        destination=Destination.DIGEST,
    )
    return held.collect(KEY, request, now, {})


def windows(held: HeldTable, now: float, tick: int) -> list[Released]:
    return [r for r in held.release_due(PARTITION, now, tick) if r.destination == "digest"]


def test_items_of_one_key_within_the_window_make_one_digest_when_it_closes(held: HeldTable) -> None:
    first, second, third = item(), item(), item()
    joined = {collect(held, first, 0.0), collect(held, second, 10.0), collect(held, third, 59.0)}
    assert joined == {digests.digest_id(first.id)}
    assert windows(held, now=59.5, tick=1) == []
    [window] = windows(held, now=60.0, tick=2)
    assert window.digest_id == digests.digest_id(first.id)
    assert [n.id for n in window.items] == [first.id, second.id, third.id]
    assert windows(held, now=61.0, tick=3) == []


def test_an_item_after_the_window_closed_opens_the_next_one(held: HeldTable) -> None:
    first = item()
    collect(held, first, 0.0)
    assert len(windows(held, now=60.0, tick=1)) == 1
    late = item()
    assert collect(held, late, 61.0) == digests.digest_id(late.id)
    [window] = windows(held, now=121.0, tick=2)
    assert [n.id for n in window.items] == [late.id]


def test_keys_and_channels_have_windows_of_their_own(held: HeldTable) -> None:
    comments, likes = item("comments"), item("likes")
    texted = item("comments").model_copy(
        update={"channel": Channel.SMS, "recipient_address": "+15550100"}
    )
    ids = {collect(held, comments, 0.0), collect(held, likes, 0.0), collect(held, texted, 0.0)}
    assert len(ids) == 3
    assert len(windows(held, now=60.0, tick=1)) == 3


def test_an_item_read_again_stays_in_its_window_and_is_not_sent_twice(held: HeldTable) -> None:
    first, second = item(), item()
    collect(held, first, 0.0)
    collect(held, second, 1.0)
    assert collect(held, second, 2.0) == digests.digest_id(first.id)  # a replay while open
    [window] = windows(held, now=60.0, tick=1)
    assert len(window.items) == 2
    # Read again after its digest went out: remembered, not collected a second time.
    assert collect(held, second, 70.0) == digests.digest_id(first.id)
    assert windows(held, now=200.0, tick=2) == []


def test_a_window_released_by_a_tick_read_again_is_released_again(held: HeldTable) -> None:
    first = item()
    collect(held, first, 0.0)
    assert len(windows(held, now=60.0, tick=5)) == 1
    # The worker died before the tick was committed: the same tick is read again.
    held.forget_partitions()
    [again] = windows(held, now=61.0, tick=5)
    assert again.digest_id == digests.digest_id(first.id)
    assert windows(held, now=62.0, tick=6) == []


def test_a_full_window_goes_on_the_next_tick_and_the_next_item_opens_another(held: HeldTable) -> None:
    items = [item(max_items=3) for _ in range(4)]
    joined = [collect(held, n, float(i)) for i, n in enumerate(items)]
    assert joined[:3] == [digests.digest_id(items[0].id)] * 3
    assert joined[3] == digests.digest_id(items[3].id)
    [full] = windows(held, now=3.5, tick=1)
    assert len(full.items) == 3


def test_a_window_closes_early_rather_than_pass_the_payload_limit(held: HeldTable) -> None:
    big = "x" * 30_000
    first, second, third = item(text=big), item(text=big), item(text=big)
    assert collect(held, first, 0.0) == collect(held, second, 1.0)
    assert collect(held, third, 2.0) == digests.digest_id(third.id)
    [sent] = windows(held, now=2.5, tick=1)
    assert [n.id for n in sent.items] == [first.id, second.id]


def escalating(after: int = 600) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=TENANT,
        channel=Channel.INAPP,
        recipient_id="recipient",
        subject="Your order",
        body="shipped",
        escalate=[EscalationStep(after_seconds=after, channel=Channel.EMAIL)],
    )


def hold_escalation(held: HeldTable, sent: Notification, now: float) -> None:
    assert sent.escalate
    request = HoldRequest(
        notification=sent,
        release_at=now + sent.escalate[0].after_seconds,
        destination=Destination.ESCALATE,
    )
    held.hold(KEY, request, now, {})


def test_seeing_the_message_stops_its_waiting_step_and_no_other(held: HeldTable) -> None:
    seen, unseen = escalating(), escalating()
    hold_escalation(held, seen, 0.0)
    hold_escalation(held, unseen, 0.0)
    stopped = held.stop_escalations(KEY, {seen.id}, 10.0)
    assert [n.id for n in stopped] == [seen.id]
    due = held.release_due(PARTITION, 600.0, 1)
    assert [r.notification.id for r in due if r.notification] == [unseen.id]


def test_a_later_step_is_stopped_by_the_chain_s_in_app_message(held: HeldTable) -> None:
    root = escalating()
    step = root.model_copy(
        update={
            "id": uuid.uuid4(),
            "channel": Channel.EMAIL,
            "escalation_of": EscalationOf(notification_id=root.id, step=1),
        }
    )
    hold_escalation(held, step, 0.0)
    assert [n.id for n in held.stop_escalations(KEY, {root.id}, 1.0)] == [step.id]
    assert held.stop_escalations(KEY, {root.id}, 2.0) == []
