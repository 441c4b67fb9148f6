"""The held table's releases, tick by tick: a tick read again (its worker died before the
offset was committed) releases again what it released; a later tick lets it go.

Pure logic: the Faust table is replaced by a dict (the pipeline tests run the real one).
"""

from __future__ import annotations

import uuid
from typing import Any, cast

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Destination, HoldRequest, Notification
from notifyhub.tables.held import HeldTable
from tests.support.held import KEY, PARTITION


def hold_one(held: HeldTable, release_at: float, now: float = 0.0) -> Notification:
    notification = Notification(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel=Channel.SMS,
        recipient_id="recipient",
        recipient_address="+15550100",
        body="later",
    )
    request = HoldRequest(
        notification=notification, release_at=release_at, destination=Destination.ENRICH
    )
    held.hold(KEY, request, now, {})
    return notification


def released_ids(held: HeldTable, now: float, tick: int) -> list[uuid.UUID]:
    # Only notifications are held here (destination enrich).
    return [cast(Notification, r.notification).id for r in held.release_due(PARTITION, now, tick)]


def test_a_due_entry_is_released_once_by_successive_ticks(
    held: HeldTable, table: dict[bytes, Any]
) -> None:
    notification = hold_one(held, release_at=10.0)
    assert released_ids(held, now=9.0, tick=1) == []
    assert released_ids(held, now=11.0, tick=2) == [notification.id]
    assert released_ids(held, now=12.0, tick=3) == []
    assert KEY not in table or not table[KEY]["releasing"]


def test_the_tick_that_released_an_entry_releases_it_again_when_read_again(held: HeldTable) -> None:
    notification = hold_one(held, release_at=10.0)
    assert released_ids(held, now=11.0, tick=2) == [notification.id]
    held.forget_partitions()  # a new owner, or the restarted worker, scans on its first tick
    # Ticks from before it (re-read from the committed offset) leave it alone.
    assert released_ids(held, now=20.0, tick=1) == []
    assert released_ids(held, now=20.0, tick=2) == [notification.id]
    assert released_ids(held, now=21.0, tick=3) == []


def test_a_replayed_hold_request_after_the_release_does_not_hold_again(held: HeldTable) -> None:
    notification = hold_one(held, release_at=10.0)
    assert released_ids(held, now=11.0, tick=2) == [notification.id]
    assert released_ids(held, now=12.0, tick=3) == []
    held.hold(
        KEY,
        HoldRequest(notification=notification, release_at=10.0, destination=Destination.ENRICH),
        13.0,
        {},
    )
    assert released_ids(held, now=14.0, tick=4) == []
