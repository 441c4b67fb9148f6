"""Twilio webhooks: signatures computed here by hand, status callbacks, and STOP/START replies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from notifyhub.receipts.model import Outcome, Receipt
from notifyhub.receipts.twilio import opt_out_change, signature_is_valid, status_receipt
from tests.support.signing import twilio_signature

TOKEN = "12345678901234567890123456789012"
OLD_TOKEN = "abcdefabcdefabcdefabcdefabcdef00"
URL = "https://hooks.example.com/twilio/status?tenant=acme"
PARAMS = {
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "MessageStatus": "delivered",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "To": "+15558675310",
    "From": "+15017122661",
}
NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)


def callback(**fields: str) -> dict[str, str]:
    return {**PARAMS, **fields}


class TestSignature:
    def test_a_signature_made_with_the_token_is_valid(self) -> None:
        assert signature_is_valid([TOKEN], URL, PARAMS, twilio_signature(TOKEN, URL, PARAMS))

    def test_a_signature_made_with_another_token_is_refused(self) -> None:
        forged = twilio_signature("not-the-token-at-all-000000000000", URL, PARAMS)
        assert not signature_is_valid([TOKEN], URL, PARAMS, forged)

    def test_a_garbage_signature_is_refused(self) -> None:
        assert not signature_is_valid([TOKEN], URL, PARAMS, "bm90IGEgc2lnbmF0dXJl")

    def test_a_tampered_param_is_refused(self) -> None:
        signature = twilio_signature(TOKEN, URL, PARAMS)
        assert not signature_is_valid([TOKEN], URL, callback(MessageStatus="failed"), signature)

    def test_an_added_param_is_refused(self) -> None:
        signature = twilio_signature(TOKEN, URL, PARAMS)
        assert not signature_is_valid([TOKEN], URL, callback(ErrorCode="30003"), signature)

    def test_another_url_is_refused(self) -> None:
        signature = twilio_signature(TOKEN, URL, PARAMS)
        other = "https://hooks.example.com/twilio/status?tenant=other"
        assert not signature_is_valid([TOKEN], other, PARAMS, signature)

    def test_the_previous_token_still_validates_when_listed_second(self) -> None:
        signature = twilio_signature(OLD_TOKEN, URL, PARAMS)
        assert signature_is_valid([TOKEN, OLD_TOKEN], URL, PARAMS, signature)
        assert not signature_is_valid([TOKEN], URL, PARAMS, signature)

    def test_the_default_port_may_be_in_the_signed_url_or_not(self) -> None:
        with_port = "https://hooks.example.com:443/twilio/status?tenant=acme"
        assert signature_is_valid([TOKEN], with_port, PARAMS, twilio_signature(TOKEN, URL, PARAMS))
        assert signature_is_valid([TOKEN], URL, PARAMS, twilio_signature(TOKEN, with_port, PARAMS))

    def test_an_empty_token_never_validates(self) -> None:
        assert not signature_is_valid(["", TOKEN], URL, PARAMS, twilio_signature("", URL, PARAMS))

    def test_no_tokens_validate_nothing(self) -> None:
        assert not signature_is_valid([], URL, PARAMS, twilio_signature(TOKEN, URL, PARAMS))

    def test_a_malformed_port_is_refused(self) -> None:
        bad = "https://hooks.example.com:99999/twilio/status"
        assert not signature_is_valid([TOKEN], bad, PARAMS, twilio_signature(TOKEN, bad, PARAMS))


class TestStatusReceipt:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            ("sent", Outcome.SENT),
            ("delivered", Outcome.DELIVERED),
            ("read", Outcome.DELIVERED),
            ("undelivered", Outcome.UNDELIVERED),
            ("failed", Outcome.FAILED),
        ],
    )
    def test_recorded_statuses(self, status: str, outcome: Outcome) -> None:
        receipt = status_receipt(callback(MessageStatus=status), NOW)
        assert receipt == Receipt(
            provider="twilio",
            provider_message_id=PARAMS["MessageSid"],
            outcome=outcome,
            receipt_id=f"{PARAMS['MessageSid']}:{status}",
            occurred_at=NOW,
            reason=None,
        )

    @pytest.mark.parametrize(
        "status",
        ["queued", "accepted", "sending", "scheduled", "canceled", "receiving", "received", "new-one"],
    )
    def test_statuses_with_nothing_to_record(self, status: str) -> None:
        assert status_receipt(callback(MessageStatus=status), NOW) is None

    def test_a_known_error_code_is_explained(self) -> None:
        receipt = status_receipt(callback(MessageStatus="undelivered", ErrorCode="30003"), NOW)
        assert receipt is not None
        assert receipt.reason == "Twilio error 30003: unreachable destination handset"

    def test_an_unknown_error_code_keeps_twilios_message(self) -> None:
        fields = callback(MessageStatus="failed", ErrorCode="30999", ErrorMessage="Something new")
        receipt = status_receipt(fields, NOW)
        assert receipt is not None
        assert receipt.reason == "Twilio error 30999: Something new"

    def test_an_unknown_error_code_alone_is_reported_by_number(self) -> None:
        receipt = status_receipt(callback(MessageStatus="failed", ErrorCode="30999"), NOW)
        assert receipt is not None
        assert receipt.reason == "Twilio error 30999"

    def test_a_delivery_has_no_reason_even_with_an_error_code_field(self) -> None:
        receipt = status_receipt(callback(MessageStatus="delivered", ErrorCode="0"), NOW)
        assert receipt is not None
        assert receipt.reason is None

    def test_the_receipt_time_is_utc(self) -> None:
        local = NOW.astimezone(timezone(timedelta(hours=2)))
        receipt = status_receipt(PARAMS, local)
        assert receipt is not None
        assert receipt.occurred_at == NOW
        assert receipt.occurred_at.tzinfo is UTC

    def test_a_naive_time_is_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            status_receipt(PARAMS, NOW.replace(tzinfo=None))

    @pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus"])
    def test_a_missing_field_is_named(self, missing: str) -> None:
        fields = {name: value for name, value in PARAMS.items() if name != missing}
        with pytest.raises(ValueError, match=missing):
            status_receipt(fields, NOW)


class TestOptOutChange:
    def inbound(self, body: str) -> dict[str, str]:
        return {"MessageSid": "SM1", "From": "+15558675310", "To": "+15017122661", "Body": body}

    @pytest.mark.parametrize(
        "body",
        [
            "STOP",
            "stop",
            "  Stop \n",
            "STOPALL",
            "UNSUBSCRIBE",
            "CANCEL",
            "END",
            "QUIT",
            "REVOKE",
            "OPTOUT",
        ],
    )
    def test_opt_out_keywords(self, body: str) -> None:
        assert opt_out_change(self.inbound(body)) == ("+15558675310", True)

    @pytest.mark.parametrize("body", ["START", "start", " Unstop ", "YES"])
    def test_opt_in_keywords(self, body: str) -> None:
        assert opt_out_change(self.inbound(body)) == ("+15558675310", False)

    @pytest.mark.parametrize("body", ["STOP PLEASE", "please stop", "Hello", "", "HELP", "STOP."])
    def test_other_bodies_change_nothing(self, body: str) -> None:
        assert opt_out_change(self.inbound(body)) is None

    def test_no_body_changes_nothing(self) -> None:
        assert opt_out_change({"From": "+15558675310", "MessageSid": "SM1"}) is None

    def test_a_keyword_without_a_sender_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="From"):
            opt_out_change({"Body": "STOP", "MessageSid": "SM1"})
