"""The recipient key, spelled in one place, is what every per-recipient message keys by."""

from __future__ import annotations

import uuid

from notifyhub.model.channels import Channel
from notifyhub.model.keys import recipient_key, recipient_name
from notifyhub.model.messages import IntakeMessage, Notification, PreferenceUpdate

TENANT = uuid.UUID("6f1c3a52-0000-4000-8000-000000000001")


def test_recipient_key_is_tenant_colon_recipient() -> None:
    assert recipient_name(TENANT, "ada") == f"{TENANT}:ada"
    assert recipient_key(str(TENANT), "ada") == f"{TENANT}:ada".encode()


def test_messages_of_one_recipient_share_its_key() -> None:
    intake = IntakeMessage(
        tenant_id=TENANT, channel=Channel.EMAIL, recipient_id="ada", payload={"body": "hi"}
    )
    notification = Notification(
        id=uuid.uuid4(), tenant_id=TENANT, channel=Channel.EMAIL, recipient_id="ada", body="hi"
    )
    update = PreferenceUpdate(tenant_id=TENANT, user_id="ada", channel=Channel.EMAIL, preference=None)
    assert intake.recipient_key == notification.recipient_key == update.recipient_key
    assert intake.recipient_key == recipient_key(TENANT, "ada")
