"""Delivery truth against the real stack: provider receipts (Twilio status callbacks, SES
events through SNS) move a sent notification on, forward only and once; hard bounces,
complaints and SMS STOP suppress the address; sends to a suppressed address are dropped
before any provider call.

Receipts are signed here the way Twilio and SNS sign them (``signing.py``); the worker's
public URL is one the providers would call (``PUBLIC_URL``), which the Twilio signature
covers, while the requests go to the worker on loopback.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support.api import Tenant, activity_feed, call, eventually, send_notification, wait_for_status
from tests.support.receipts import PUBLIC_URL, sent_sms, status_fields, twilio_callback
from tests.support.servers.ses import FakeSes
from tests.support.servers.sns import FakeSnsHost
from tests.support.servers.twilio import FakeTwilio
from tests.support.signing import Signer
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.made(datetime.now(UTC))


@pytest.fixture(scope="module")
async def sns_host(signer: Signer) -> AsyncIterator[FakeSnsHost]:
    server = FakeSnsHost(signer.pem)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture(scope="module")
def receiving(
    worker_factory: Callable[..., Worker], twilio: FakeTwilio, ses: FakeSes, sns_host: FakeSnsHost
) -> Worker:
    return worker_factory(
        **twilio.env(),
        **ses.env(),
        **sns_host.env(),
        NOTIFYHUB_SINK_CHANNELS="push",
        NOTIFYHUB_EMAIL_PROVIDERS="ses",
        NOTIFYHUB_SMS_PROVIDERS="twilio",
        NOTIFYHUB_PUBLIC_URL=PUBLIC_URL,
        NOTIFYHUB_SES_SNS_TOPIC_ARNS=TOPIC,
        NOTIFYHUB_WEBHOOK_ALLOWED_HOSTS="127.0.0.1",
    )


async def test_a_twilio_delivered_callback_moves_sent_to_delivered_once(
    receiving: Worker, tenant: Tenant, http: aiohttp.ClientSession, twilio: FakeTwilio
) -> None:
    notification_id, sid = await sent_sms(http, receiving, tenant, twilio)
    path = "/receipts/twilio/status"
    assert await twilio_callback(http, receiving, twilio, path, status_fields(sid, "delivered")) == 204
    await wait_for_status(http, receiving, tenant, notification_id, "delivered")
    # Replayed, then arriving late ("sent" after "delivered"): nothing changes, logged once.
    assert await twilio_callback(http, receiving, twilio, path, status_fields(sid, "delivered")) == 204
    assert await twilio_callback(http, receiving, twilio, path, status_fields(sid, "sent")) == 204
    await asyncio.sleep(2)
    found = await wait_for_status(http, receiving, tenant, notification_id, "delivered")
    assert found["status"] == "delivered"
    statuses = [e["status"] for e in await activity_feed(http, receiving, tenant, notification_id)]
    assert statuses.count("delivered") == 1, statuses


async def test_an_undelivered_callback_records_twilio_s_error(
    receiving: Worker, tenant: Tenant, http: aiohttp.ClientSession, twilio: FakeTwilio
) -> None:
    notification_id, sid = await sent_sms(http, receiving, tenant, twilio)
    fields = status_fields(sid, "undelivered", ErrorCode="30003")
    assert await twilio_callback(http, receiving, twilio, "/receipts/twilio/status", fields) == 204
    found = await wait_for_status(http, receiving, tenant, notification_id, "undelivered")
    assert "30003" in found["status_reason"]


async def test_a_forged_twilio_callback_is_refused_and_changes_nothing(
    receiving: Worker, tenant: Tenant, http: aiohttp.ClientSession, twilio: FakeTwilio
) -> None:
    notification_id, sid = await sent_sms(http, receiving, tenant, twilio)
    forged = status_fields(sid, "undelivered", ErrorCode="30003")
    path = "/receipts/twilio/status"
    assert await twilio_callback(http, receiving, twilio, path, forged, token="0" * 32) == 403
    async with http.post(f"{receiving.base_url}{path}", data=forged) as response:
        assert response.status == 403  # no signature at all
    await asyncio.sleep(2)
    assert (await wait_for_status(http, receiving, tenant, notification_id))["status"] == "sent"


async def text_to(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, number: str
) -> dict[str, Any]:
    """Text ``number``; the notification once it is final."""
    sent = await send_notification(
        http,
        worker,
        tenant,
        channel="sms",
        recipient_id="texted",
        recipient_address=number,
        payload={"body": "hi"},
    )
    return await wait_for_status(http, worker, tenant, sent["id"])


async def test_sms_stop_suppresses_the_number_for_every_tenant_and_start_lifts_it(
    receiving: Worker, tenant: Tenant, http: aiohttp.ClientSession, twilio: FakeTwilio
) -> None:
    number = "+15005550123"
    inbound = {"From": number, "To": "+15005550000", "Body": " Stop ", "MessageSid": "SMin1"}
    assert await twilio_callback(http, receiving, twilio, "/receipts/twilio/inbound", inbound) == 200
    _, listed = await call(
        http, "GET", f"{receiving.base_url}/api/v1/suppressions?channel=sms", headers=tenant.headers
    )
    assert {"address": number, "scope": "all tenants"}.items() <= next(
        s for s in listed["data"] if s["address"] == number
    ).items()
    dropped = await text_to(http, receiving, tenant, number)
    assert dropped["status"] == "dropped"
    assert "suppressed (texted STOP)" in dropped["status_reason"]
    assert not [m for m in twilio.messages if m["to"] == number], "no provider call"
    # A tenant cannot lift every tenant's STOP; the number's START does.
    status, _ = await call(
        http, "DELETE", f"{receiving.base_url}/api/v1/suppressions/sms/{number}", headers=tenant.headers
    )
    assert status == 404
    again = {**inbound, "Body": "START", "MessageSid": "SMin2"}
    assert await twilio_callback(http, receiving, twilio, "/receipts/twilio/inbound", again) == 200
    assert (await text_to(http, receiving, tenant, number))["status"] == "sent"


async def test_a_send_twilio_refuses_as_opted_out_suppresses_the_number_until_start(
    receiving: Worker, tenant: Tenant, http: aiohttp.ClientSession, twilio: FakeTwilio
) -> None:
    # The STOP reached Twilio but never us: Twilio refuses the send with 21610.
    number = "+15005550004"
    failed = await text_to(http, receiving, tenant, number)
    assert failed["status"] == "failed"
    assert "21610" in failed["status_reason"]
    assert twilio.refused_to.count(number) == 1

    async def listed() -> list[dict[str, Any]]:
        _, body = await call(
            http, "GET", f"{receiving.base_url}/api/v1/suppressions?channel=sms", headers=tenant.headers
        )
        return [s for s in body["data"] if s["address"] == number]

    (suppressed,) = await listed()
    assert suppressed["scope"] == "all tenants"
    assert (suppressed["source"], suppressed["reason"]) == (
        "sms-stop",
        "opted out at Twilio (error 21610)",
    )
    dropped = await text_to(http, receiving, tenant, number)
    assert dropped["status"] == "dropped"
    assert "suppressed (opted out at Twilio" in dropped["status_reason"]
    assert twilio.refused_to.count(number) == 1, "no provider call"
    # The number's START lifts it, as it lifts a STOP texted to us.
    start = {"From": number, "To": "+15005550000", "Body": "START", "MessageSid": "SMin21610"}
    assert await twilio_callback(http, receiving, twilio, "/receipts/twilio/inbound", start) == 200
    assert await listed() == []


async def test_the_suppression_api_keeps_a_tenant_s_list_and_the_send_drops_what_is_on_it(
    receiving: Worker, tenant: Tenant, http: aiohttp.ClientSession, ses: FakeSes
) -> None:
    base = f"{receiving.base_url}/api/v1/suppressions"
    status, body = await call(
        http,
        "POST",
        base,
        json={"channel": "email", "address": "Gone@Example.com"},
        headers=tenant.headers,
    )
    assert status == 201, body
    assert body["data"]["address"] == "gone@example.com"
    status, body = await call(
        http,
        "POST",
        base,
        json={"channel": "email", "address": "not an address"},
        headers=tenant.headers,
    )
    assert status == 422 and "address" in body["error"]["details"]
    before = len(ses.sent_messages())
    sent = await send_notification(
        http,
        receiving,
        tenant,
        channel="email",
        recipient_id="g",
        recipient_address="gone@example.com",
        payload={"subject": "s", "body": "b"},
    )
    dropped = await wait_for_status(http, receiving, tenant, sent["id"])
    assert dropped["status"] == "dropped" and "suppressed" in dropped["status_reason"]
    assert len(ses.sent_messages()) == before, "no provider call"
    # Another tenant's list is its own.
    status, _ = await call(http, "DELETE", f"{base}/email/gone@example.com", headers=tenant.headers)
    assert status == 204
    status, _ = await call(http, "DELETE", f"{base}/email/gone@example.com", headers=tenant.headers)
    assert status == 404


def ses_event(message_id: str, event: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    body = {
        "eventType": event.pop("eventType"),
        "mail": {"messageId": message_id, "timestamp": at.isoformat()},
        **event,
    }
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(body),
        "Timestamp": at.isoformat().replace("+00:00", "Z"),
    }


async def post_sns(http: aiohttp.ClientSession, worker: Worker, message: dict[str, Any]) -> int:
    async with http.post(
        f"{worker.base_url}/receipts/ses",
        data=json.dumps(message),
        headers={"Content-Type": "text/plain"},
    ) as response:
        return response.status


async def sent_email(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, ses: FakeSes, address: str
) -> tuple[str, str]:
    subject = f"receipt {uuid.uuid4().hex[:8]}"
    sent = await send_notification(
        http,
        worker,
        tenant,
        channel="email",
        recipient_id=address,
        recipient_address=address,
        payload={"subject": subject, "body": "b"},
    )
    await wait_for_status(http, worker, tenant, sent["id"], "sent")
    [message] = [m for m in ses.sent_messages() if m["subject"] == subject]
    return sent["id"], message["id"]


async def test_ses_delivery_bounce_and_complaint_receipts(
    receiving: Worker, tenant: Tenant, http: aiohttp.ClientSession, ses: FakeSes, signer: Signer
) -> None:
    delivered_id, message_id = await sent_email(http, receiving, tenant, ses, "ok@example.com")
    assert (
        await post_sns(
            http,
            receiving,
            signer.sign(
                ses_event(
                    message_id, {"eventType": "Delivery", "delivery": {"recipients": ["ok@example.com"]}}
                )
            ),
        )
        == 204
    )
    await wait_for_status(http, receiving, tenant, delivered_id, "delivered")
    # A complaint comes after the delivery: it moves on, and suppresses the address.
    complaint = {
        "eventType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "ok@example.com"}],
            "complaintFeedbackType": "abuse",
        },
    }
    assert await post_sns(http, receiving, signer.sign(ses_event(message_id, complaint))) == 204
    await wait_for_status(http, receiving, tenant, delivered_id, "complained")

    bounced_id, message_id = await sent_email(http, receiving, tenant, ses, "bounce@example.com")
    bounce = {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": "bounce@example.com", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
            ],
        },
    }
    assert (
        await post_sns(http, receiving, signer.sign(ses_event(message_id, bounce), version="2")) == 204
    )
    found = await wait_for_status(http, receiving, tenant, bounced_id, "bounced")
    assert "550 5.1.1" in found["status_reason"]

    async def listed() -> bool:
        _, body = await call(
            http,
            "GET",
            f"{receiving.base_url}/api/v1/suppressions?channel=email",
            headers=tenant.headers,
        )
        return {s["address"] for s in body["data"]} >= {"ok@example.com", "bounce@example.com"}

    await eventually(listed, "the hard bounce and the complaint on the suppression list")
    again = await send_notification(
        http,
        receiving,
        tenant,
        channel="email",
        recipient_id="b",
        recipient_address="bounce@example.com",
        payload={"subject": "s", "body": "b"},
    )
    dropped = await wait_for_status(http, receiving, tenant, again["id"])
    assert (dropped["status"], dropped["status_reason"]) == (
        "dropped",
        "the address is suppressed (hard bounce)",
    )


async def test_forged_stale_and_foreign_sns_messages_are_refused(
    receiving: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    ses: FakeSes,
    signer: Signer,
    sns_host: FakeSnsHost,
) -> None:
    notification_id, message_id = await sent_email(http, receiving, tenant, ses, "forged@example.com")
    bounce = {
        "eventType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bouncedRecipients": [{"emailAddress": "forged@example.com"}],
        },
    }
    genuine = signer.sign(ses_event(message_id, dict(bounce)))
    tampered = {**genuine, "Message": genuine["Message"].replace("forged@", "other@")}
    assert await post_sns(http, receiving, tampered) == 403
    stale = signer.sign(ses_event(message_id, dict(bounce), at=datetime.now(UTC) - timedelta(hours=2)))
    assert await post_sns(http, receiving, stale) == 403
    foreign = signer.sign(
        {**ses_event(message_id, dict(bounce)), "TopicArn": "arn:aws:sns:us-east-1:999999999999:theirs"}
    )
    assert await post_sns(http, receiving, foreign) == 403
    fetched = len(sns_host.requests)
    elsewhere = signer.sign(
        ses_event(message_id, dict(bounce)), cert_url="https://evil.example.com/cert.pem"
    )
    assert await post_sns(http, receiving, elsewhere) == 403
    assert len(sns_host.requests) == fetched, "no certificate fetched from a host that is not SNS's"
    await asyncio.sleep(2)
    assert (await wait_for_status(http, receiving, tenant, notification_id))["status"] == "sent"


async def test_an_sns_subscription_confirmation_is_confirmed(
    receiving: Worker, http: aiohttp.ClientSession, signer: Signer, sns_host: FakeSnsHost
) -> None:
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": str(uuid.uuid4()),
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d9276",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=t&Token=2336",
        "Timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    assert await post_sns(http, receiving, signer.sign(confirmation)) == 204
    assert any("Action=ConfirmSubscription" in r for r in sns_host.requests)


async def test_a_receipt_that_beats_the_send_s_record_is_applied_once_the_record_exists(
    receiving: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    twilio: FakeTwilio,
    database: asyncpg.Pool,
) -> None:
    """Twilio can call back before the send stage has written the message's SID: the
    receipt waits (held, looked up again with backoff) instead of being lost."""
    notification_id, _ = await sent_sms(http, receiving, tenant, twilio)
    early_sid = "SM" + uuid.uuid4().hex
    fields = status_fields(early_sid, "delivered")
    assert await twilio_callback(http, receiving, twilio, "/receipts/twilio/status", fields) == 204
    await asyncio.sleep(1.5)
    assert (await wait_for_status(http, receiving, tenant, notification_id))["status"] == "sent"
    # The send's record arrives now, naming that SID.
    await database.execute(
        "UPDATE delivery_log SET provider_message_id = $1 "
        "WHERE notification_id = $2 AND status = 'sent'",
        early_sid,
        uuid.UUID(notification_id),
    )
    await wait_for_status(http, receiving, tenant, notification_id, "delivered")
