"""Intake's parsing of the public message contract (pure logic, no services)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from notifyhub.cores.intake import Rejected, parse
from notifyhub.model.channels import Channel

TENANT = "6f1d1d7e-8a57-4c57-9d5f-4f0e6c1f9a10"
NOW = time.time()


def raw(**fields: object) -> bytes:
    message: dict[str, object] = {
        "tenant_id": TENANT,
        "channel": "inapp",
        "recipient_id": "u1",
        "payload": {"body": "x"},
    }
    message.update(fields)
    return json.dumps({k: v for k, v in message.items() if v is not None}).encode()


def test_a_minimal_message_gets_the_documented_defaults() -> None:
    message = parse(raw(), "t:0:1", NOW)
    assert message.channel is Channel.INAPP
    assert message.priority == 5
    assert message.v == 2  # read as version 1, which has no priority to turn around


def test_a_message_without_an_id_gets_one_derived_from_its_place_in_kafka() -> None:
    first = parse(raw(), "intake:3:1000", NOW)
    assert first.id == parse(raw(), "intake:3:1000", NOW).id
    assert first.id != parse(raw(), "intake:3:1001", NOW).id


def test_a_message_with_an_id_keeps_it() -> None:
    given = uuid.uuid4()
    assert parse(raw(id=str(given)), "t:0:1", NOW).id == given


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"", "empty message"),
        (b"\xff\xfe", "invalid intake message"),
        (b"[1, 2]", "invalid intake message"),
        (raw(channel="fax"), "channel"),
        (raw(tenant_id="acme"), "tenant_id"),
        (raw(priority=0), "priority"),
        (raw(v=3), "v"),
        (raw(extra=True), "extra: unknown field"),
        (raw(payload={}), "payload.body"),
        (raw(scheduled_at="2020-01-01T00:00:00"), "scheduled_at"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(message: bytes, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        parse(message, "t:0:1", NOW)
