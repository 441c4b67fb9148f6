"""SNS verification against a key and certificate made here, and the SES events it carries."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from notifyhub.receipts.model import Outcome, Receipt
from notifyhub.receipts.sns import InvalidSnsMessage, SnsVerifier, ses_receipt
from tests.support.signing import CERT_URL, Signer

NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
SES_MESSAGE_ID = "010001712345abcd-1a2b3c4d-aaaa-bbbb-cccc-0123456789ab-000000"


@dataclass
class FakeFetch:
    pem: bytes
    calls: list[str] = field(default_factory=list)

    async def __call__(self, url: str) -> bytes:
        self.calls.append(url)
        return self.pem


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.made(NOW)


@pytest.fixture
def fetch(signer: Signer) -> FakeFetch:
    return FakeFetch(signer.pem)


@pytest.fixture
def verifier(fetch: FakeFetch) -> SnsVerifier:
    return SnsVerifier(fetch, allowed_topics=frozenset({TOPIC}), now=lambda: NOW)


def notification(message: str = '{"eventType": "Send"}', **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Subject": "Amazon SES Email Event Notification",
        "Message": message,
        "Timestamp": (NOW - timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
        **fields,
    }


def subscription_confirmation() -> dict[str, Any]:
    return {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.\nTo confirm, visit the URL.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=2336",
        "Timestamp": "2024-05-01T09:29:00.000Z",
    }


class TestVerify:
    @pytest.mark.parametrize("version", ["1", "2"])
    async def test_a_signed_notification_passes(
        self, verifier: SnsVerifier, signer: Signer, fetch: FakeFetch, version: str
    ) -> None:
        await verifier.verify(signer.sign(notification(), version))
        assert fetch.calls == [CERT_URL]

    async def test_a_notification_without_subject_passes(
        self, verifier: SnsVerifier, signer: Signer
    ) -> None:
        message = notification()
        del message["Subject"]
        await verifier.verify(signer.sign(message, "2"))

    @pytest.mark.parametrize("version", ["1", "2"])
    async def test_a_signed_subscription_confirmation_passes(
        self, verifier: SnsVerifier, signer: Signer, version: str
    ) -> None:
        await verifier.verify(signer.sign(subscription_confirmation(), version))

    async def test_an_unsubscribe_confirmation_passes(
        self, verifier: SnsVerifier, signer: Signer
    ) -> None:
        await verifier.verify(
            signer.sign({**subscription_confirmation(), "Type": "UnsubscribeConfirmation"})
        )

    async def test_a_tampered_message_is_refused(self, verifier: SnsVerifier, signer: Signer) -> None:
        signed = signer.sign(notification())
        signed["Message"] = '{"eventType": "Delivery"}'
        with pytest.raises(InvalidSnsMessage, match="signature does not match"):
            await verifier.verify(signed)

    async def test_a_tampered_subject_is_refused(self, verifier: SnsVerifier, signer: Signer) -> None:
        signed = signer.sign(notification())
        signed["Subject"] = "Something else"
        with pytest.raises(InvalidSnsMessage, match="signature does not match"):
            await verifier.verify(signed)

    async def test_a_signature_of_another_key_is_refused(
        self, verifier: SnsVerifier, signer: Signer
    ) -> None:
        other = Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), signer.pem)
        with pytest.raises(InvalidSnsMessage, match="signature does not match"):
            await verifier.verify(other.sign(notification()))

    async def test_a_v1_signature_claimed_as_v2_is_refused(
        self, verifier: SnsVerifier, signer: Signer
    ) -> None:
        signed = {**signer.sign(notification(), "1"), "SignatureVersion": "2"}
        with pytest.raises(InvalidSnsMessage, match="signature does not match"):
            await verifier.verify(signed)

    async def test_a_signature_that_is_not_base64_is_refused(
        self, verifier: SnsVerifier, signer: Signer
    ) -> None:
        with pytest.raises(InvalidSnsMessage, match="base64"):
            await verifier.verify({**signer.sign(notification()), "Signature": "not base64!"})

    async def test_an_unknown_signature_version_is_refused(
        self, verifier: SnsVerifier, signer: Signer
    ) -> None:
        with pytest.raises(InvalidSnsMessage, match="SignatureVersion"):
            await verifier.verify({**signer.sign(notification()), "SignatureVersion": "3"})

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.example.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com@evil.example.com/cert.pem",
            "https://evil.example.com\\@sns.us-east-1.amazonaws.com/cert.pem",
            "https://sns.us-east-1.amazonaws.com:8443/cert.pem",
            "https://sns.us-east-1.amazonaws.com\n/cert.pem",
            "https://s3.amazonaws.com/sns.us-east-1.amazonaws.com/cert.pem",
        ],
    )
    async def test_a_certificate_elsewhere_is_refused_without_fetching(
        self, verifier: SnsVerifier, signer: Signer, fetch: FakeFetch, url: str
    ) -> None:
        with pytest.raises(InvalidSnsMessage, match="SigningCertURL"):
            await verifier.verify({**signer.sign(notification()), "SigningCertURL": url})
        assert fetch.calls == []

    async def test_a_certificate_over_http_is_refused_without_fetching(
        self, verifier: SnsVerifier, signer: Signer, fetch: FakeFetch
    ) -> None:
        url = CERT_URL.replace("https://", "http://")
        with pytest.raises(InvalidSnsMessage, match="not https"):
            await verifier.verify({**signer.sign(notification()), "SigningCertURL": url})
        assert fetch.calls == []

    async def test_a_china_region_host_is_allowed(self, verifier: SnsVerifier, signer: Signer) -> None:
        url = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem"
        await verifier.verify({**signer.sign(notification()), "SigningCertURL": url})

    async def test_an_old_message_is_refused_as_a_replay(
        self, verifier: SnsVerifier, signer: Signer, fetch: FakeFetch
    ) -> None:
        old = (NOW - timedelta(hours=1, seconds=1)).isoformat()
        with pytest.raises(InvalidSnsMessage, match="too old"):
            await verifier.verify(signer.sign(notification(Timestamp=old)))
        assert fetch.calls == []

    async def test_a_message_from_the_future_is_refused(
        self, verifier: SnsVerifier, signer: Signer
    ) -> None:
        later = (NOW + timedelta(hours=2)).isoformat()
        with pytest.raises(InvalidSnsMessage, match="future"):
            await verifier.verify(signer.sign(notification(Timestamp=later)))

    async def test_the_max_age_is_configurable(self, fetch: FakeFetch, signer: Signer) -> None:
        verifier = SnsVerifier(fetch, max_age_seconds=60, now=lambda: NOW)
        two_minutes_ago = (NOW - timedelta(minutes=2)).isoformat()
        with pytest.raises(InvalidSnsMessage, match="too old"):
            await verifier.verify(signer.sign(notification(Timestamp=two_minutes_ago)))

    async def test_a_topic_not_ours_is_refused(
        self, verifier: SnsVerifier, signer: Signer, fetch: FakeFetch
    ) -> None:
        other = "arn:aws:sns:us-east-1:999999999999:someone-else"
        with pytest.raises(InvalidSnsMessage, match="TopicArn"):
            await verifier.verify(signer.sign(notification(TopicArn=other)))
        assert fetch.calls == []

    async def test_any_topic_passes_when_none_are_listed(self, fetch: FakeFetch, signer: Signer) -> None:
        verifier = SnsVerifier(fetch, now=lambda: NOW)
        await verifier.verify(signer.sign(notification(TopicArn="arn:aws:sns:eu-west-1:1:other")))

    @pytest.mark.parametrize(
        "missing",
        ["Type", "MessageId", "Message", "Timestamp", "TopicArn", "Signature", "SigningCertURL"],
    )
    async def test_a_missing_field_is_named(
        self, verifier: SnsVerifier, signer: Signer, missing: str
    ) -> None:
        signed = signer.sign(notification())
        del signed[missing]
        with pytest.raises(InvalidSnsMessage, match=missing):
            await verifier.verify(signed)

    @pytest.mark.parametrize("missing", ["SubscribeURL", "Token"])
    async def test_a_confirmation_without_its_fields_is_refused(
        self, verifier: SnsVerifier, signer: Signer, missing: str
    ) -> None:
        signed = signer.sign(subscription_confirmation())
        del signed[missing]
        with pytest.raises(InvalidSnsMessage, match=missing):
            await verifier.verify(signed)

    async def test_an_unknown_type_is_refused(self, verifier: SnsVerifier, signer: Signer) -> None:
        with pytest.raises(InvalidSnsMessage, match="Type"):
            await verifier.verify({**signer.sign(notification()), "Type": "Surprise"})

    async def test_the_certificate_is_fetched_once(
        self, verifier: SnsVerifier, signer: Signer, fetch: FakeFetch
    ) -> None:
        await verifier.verify(signer.sign(notification(MessageId="one")))
        await verifier.verify(signer.sign(subscription_confirmation(), "2"))
        assert fetch.calls == [CERT_URL]

    async def test_something_not_a_certificate_is_refused(self, signer: Signer) -> None:
        verifier = SnsVerifier(FakeFetch(b"<html>not found</html>"), now=lambda: NOW)
        with pytest.raises(InvalidSnsMessage, match="not a PEM certificate"):
            await verifier.verify(signer.sign(notification()))

    async def test_an_expired_certificate_is_refused(self, fetch: FakeFetch, signer: Signer) -> None:
        next_year = NOW + timedelta(days=400)
        verifier = SnsVerifier(fetch, max_age_seconds=10**9, now=lambda: next_year)
        with pytest.raises(InvalidSnsMessage, match="expired"):
            await verifier.verify(signer.sign(notification()))


def mail(**fields: Any) -> dict[str, Any]:
    return {
        "timestamp": "2024-05-01T09:28:00.012Z",
        "source": "Acme <notify@acme.example>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/acme.example",
        "sendingAccountId": "123456789012",
        "messageId": SES_MESSAGE_ID,
        "destination": ["alice@example.com", "bob@example.com"],
        "headersTruncated": False,
        "commonHeaders": {"from": ["Acme <notify@acme.example>"], "subject": "Your receipt"},
        "tags": {"ses:configuration-set": ["notifyhub"]},
        **fields,
    }


def sns_of(event: dict[str, Any]) -> dict[str, Any]:
    return notification(json.dumps(event))


DELIVERY: dict[str, Any] = {
    "eventType": "Delivery",
    "mail": mail(),
    "delivery": {
        "timestamp": "2024-05-01T09:28:02.669Z",
        "processingTimeMillis": 2657,
        "recipients": ["alice@example.com"],
        "smtpResponse": "250 2.6.0 Message received",
        "reportingMTA": "a8-70.smtp-out.amazonses.com",
    },
}
PERMANENT_BOUNCE: dict[str, Any] = {
    "eventType": "Bounce",
    "mail": mail(),
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "alice@example.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            },
            {"emailAddress": "bob@example.com", "action": "failed", "status": "5.1.1"},
        ],
        "timestamp": "2024-05-01T09:28:03.100Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "reportingMTA": "dsn; mta.example.com",
    },
}
TRANSIENT_BOUNCE: dict[str, Any] = {
    "notificationType": "Bounce",
    "mail": mail(),
    "bounce": {
        "bounceType": "Transient",
        "bounceSubType": "MailboxFull",
        "bouncedRecipients": [
            {
                "emailAddress": "alice@example.com",
                "action": "failed",
                "status": "4.2.2",
                "diagnosticCode": "smtp; 452 4.2.2 mailbox full",
            }
        ],
        "timestamp": "2024-05-01T09:28:04.000Z",
        "feedbackId": "0100015fd91a6479-ae22395c-1f7d-4423-a9e5-e0715bffc731-000000",
    },
}
COMPLAINT: dict[str, Any] = {
    "notificationType": "Complaint",
    "mail": mail(),
    "complaint": {
        "feedbackId": "0100015fd91a6479-complaint-000000",
        "complaintSubType": None,
        "complainedRecipients": [{"emailAddress": "bob@example.com"}],
        "timestamp": "2024-05-01T09:29:10.000Z",
        "userAgent": "Mozilla/5.0",
        "complaintFeedbackType": "abuse",
        "arrivalDate": "2024-05-01T09:29:09.000Z",
    },
}
REJECT: dict[str, Any] = {"eventType": "Reject", "mail": mail(), "reject": {"reason": "Bad content"}}
RENDERING_FAILURE: dict[str, Any] = {
    "eventType": "Rendering Failure",
    "mail": mail(),
    "failure": {
        "errorMessage": "Attribute 'name' is not present in the rendering data.",
        "templateName": "Welcome",
    },
}


def receipt_of(event: dict[str, Any]) -> Receipt:
    receipt = ses_receipt(sns_of(event))
    assert receipt is not None
    return receipt


class TestSesReceipt:
    def test_delivery(self) -> None:
        assert receipt_of(DELIVERY) == Receipt(
            provider="ses",
            provider_message_id=SES_MESSAGE_ID,
            outcome=Outcome.DELIVERED,
            receipt_id="22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            occurred_at=datetime(2024, 5, 1, 9, 28, 2, 669000, tzinfo=UTC),
            reason=None,
        )

    def test_a_permanent_bounce_suppresses_every_bounced_recipient(self) -> None:
        receipt = receipt_of(PERMANENT_BOUNCE)
        assert receipt.outcome is Outcome.BOUNCED
        assert receipt.reason == "Permanent bounce (General): smtp; 550 5.1.1 user unknown"
        assert receipt.suppress == ("alice@example.com", "bob@example.com")
        assert receipt.suppress_reason == "hard bounce"
        assert receipt.occurred_at == datetime(2024, 5, 1, 9, 28, 3, 100000, tzinfo=UTC)

    def test_a_transient_bounce_keeps_the_address(self) -> None:
        receipt = receipt_of(TRANSIENT_BOUNCE)
        assert receipt.outcome is Outcome.BOUNCED
        assert receipt.reason == "Transient bounce (MailboxFull), soft: smtp; 452 4.2.2 mailbox full"
        assert receipt.suppress == ()
        assert receipt.suppress_reason is None

    def test_an_undetermined_bounce_keeps_the_address(self) -> None:
        event = copy.deepcopy(PERMANENT_BOUNCE)
        event["bounce"].update(bounceType="Undetermined", bounceSubType="Undetermined")
        receipt = receipt_of(event)
        assert receipt.outcome is Outcome.BOUNCED
        assert receipt.reason is not None and "soft" in receipt.reason
        assert receipt.suppress == ()

    def test_a_complaint_suppresses_the_complainer(self) -> None:
        receipt = receipt_of(COMPLAINT)
        assert receipt.outcome is Outcome.COMPLAINED
        assert receipt.reason == "Complaint (abuse)"
        assert receipt.suppress == ("bob@example.com",)
        assert receipt.suppress_reason == "complaint"
        assert receipt.occurred_at == datetime(2024, 5, 1, 9, 29, 10, tzinfo=UTC)

    def test_a_reject_fails_with_its_reason_at_the_mail_time(self) -> None:
        receipt = receipt_of(REJECT)
        assert receipt.outcome is Outcome.FAILED
        assert receipt.reason == "Rejected by SES: Bad content"
        assert receipt.occurred_at == datetime(2024, 5, 1, 9, 28, 0, 12000, tzinfo=UTC)

    def test_a_rendering_failure_fails(self) -> None:
        receipt = receipt_of(RENDERING_FAILURE)
        assert receipt.outcome is Outcome.FAILED
        assert receipt.reason == (
            "Rendering failure of template Welcome: "
            "Attribute 'name' is not present in the rendering data."
        )

    @pytest.mark.parametrize(
        ("kind", "detail"),
        [
            ("Send", {"send": {}}),
            ("DeliveryDelay", {"deliveryDelay": {"delayType": "MailboxFull"}}),
            ("Open", {"open": {"ipAddress": "192.0.2.1", "userAgent": "Mozilla/5.0"}}),
            ("Click", {"click": {"link": "https://acme.example/x", "ipAddress": "192.0.2.1"}}),
            ("Subscription", {"subscription": {}}),
            ("AmazonSnsSubscriptionSucceeded", {}),
        ],
    )
    def test_events_with_nothing_to_record(self, kind: str, detail: dict[str, Any]) -> None:
        assert ses_receipt(sns_of({"eventType": kind, "mail": mail(), **detail})) is None

    def test_without_an_event_time_the_sns_timestamp_is_used(self) -> None:
        event = copy.deepcopy(REJECT)
        del event["mail"]["timestamp"]
        assert receipt_of(event).occurred_at == NOW - timedelta(seconds=5)

    def test_a_message_that_is_not_json_is_refused(self) -> None:
        with pytest.raises(InvalidSnsMessage, match="not JSON"):
            ses_receipt(notification("You have chosen to subscribe"))

    def test_a_message_without_a_mail_message_id_is_refused(self) -> None:
        event = copy.deepcopy(DELIVERY)
        del event["mail"]["messageId"]
        with pytest.raises(InvalidSnsMessage, match=r"mail\.messageId"):
            ses_receipt(sns_of(event))

    def test_a_message_that_is_not_an_ses_event_is_refused(self) -> None:
        with pytest.raises(InvalidSnsMessage, match="eventType"):
            ses_receipt(sns_of({"hello": "world"}))

    def test_a_confirmation_is_not_a_receipt(self) -> None:
        with pytest.raises(InvalidSnsMessage, match="Notification"):
            ses_receipt(subscription_confirmation())
