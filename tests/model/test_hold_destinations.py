"""A hold says where its content goes, as a ``Destination``; what it carries must match."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Destination, HoldRequest, Notification


def notification() -> Notification:
    return Notification(
        id=uuid.uuid4(), tenant_id=uuid.uuid4(), channel=Channel.SMS, recipient_id="r", body="later"
    )


def test_a_destination_read_from_the_wire_is_the_enum() -> None:
    raw = HoldRequest(
        notification=notification(), release_at=1.0, destination=Destination.SEND
    ).to_bytes()
    read = HoldRequest.model_validate_json(raw)
    assert read.destination is Destination.SEND
    assert b'"destination":"send"' in raw


def test_an_unknown_destination_is_refused() -> None:
    with pytest.raises(ValidationError, match="destination"):
        HoldRequest.model_validate(
            {"notification": notification().model_dump(), "release_at": 1, "destination": "elsewhere"}
        )


@pytest.mark.parametrize("destination", [Destination.WEBHOOK, Destination.RECEIPT])
def test_a_notification_cannot_be_held_for_a_webhook_or_receipt(destination: Destination) -> None:
    with pytest.raises(ValidationError, match="carries a webhook delivery"):
        HoldRequest(notification=notification(), release_at=1.0, destination=destination)
