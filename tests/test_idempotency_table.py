"""The idempotency table's decision: another copy of a notification that went on is not
passed on; the record that passed it on, read again after a crash, is.

Pure logic: the Faust table is replaced by a dict (the pipeline tests run the real one).
"""

from __future__ import annotations

import uuid

import pytest

from notifyhub.tables import idempotency

KEY = b"tenant:key-1"
FIRST = idempotency.record_name("deployment.accepted", 3, 41)
COPY = idempotency.record_name("deployment.accepted", 3, 57)


@pytest.fixture(autouse=True)
def table(monkeypatch: pytest.MonkeyPatch) -> dict:
    table: dict = {}
    monkeypatch.setattr(idempotency, "idempotency_table", table)
    return table


def test_the_record_that_passed_a_notification_on_passes_it_again_when_read_again() -> None:
    notification = uuid.uuid4()
    assert idempotency.claim(KEY, notification, 0.0, FIRST) == (notification, False)
    idempotency.passed_on(KEY, FIRST)
    assert idempotency.claim(KEY, notification, 1.0, FIRST) == (notification, False)
    assert idempotency.claim(KEY, notification, 1.0, COPY) == (notification, True)


def test_another_notification_with_the_key_is_told_the_owner() -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    idempotency.claim(KEY, owner, 0.0, FIRST)
    assert idempotency.claim(KEY, other, 1.0, COPY)[0] == owner


def test_an_entry_from_before_records_were_named_counts_as_passed_on(table: dict) -> None:
    notification = uuid.uuid4()
    table[KEY] = {"notification_id": str(notification), "expires_at": 100.0, "passed_on": True}
    assert idempotency.claim(KEY, notification, 1.0, FIRST) == (notification, True)
