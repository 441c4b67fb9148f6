"""Amazon SNS messages to our HTTPS endpoint, verified, and the Amazon SES events they carry.

Anyone can POST to the endpoint, so a message counts only once ``SnsVerifier`` has checked
it: its signing certificate comes from an SNS host over HTTPS (the host check is what stops
an attacker pointing us at a certificate of their own), its topic is ours, it is recent
(a captured message cannot be replayed later), and its signature verifies.

``ses_receipt`` then reads the SES event in a verified Notification: event publishing
(``eventType``, through a configuration set) and identity notifications
(``notificationType``) share one shape.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from notifyhub.receipts.model import Outcome, Receipt

PROVIDER = "ses"

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

# The fields signed, in the order SNS signs them; Subject only when the message has one.
NOTIFICATION_SIGNED_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
CONFIRMATION_SIGNED_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    NOTIFICATION: NOTIFICATION_SIGNED_FIELDS,
    SUBSCRIPTION_CONFIRMATION: CONFIRMATION_SIGNED_FIELDS,
    UNSUBSCRIBE_CONFIRMATION: CONFIRMATION_SIGNED_FIELDS,
}
ENVELOPE_FIELDS = ("Type", "Signature", "SignatureVersion", "SigningCertURL")
SIGNATURE_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "1": hashes.SHA1,
    "2": hashes.SHA256,
}

DEFAULT_CERTIFICATE_HOST = re.compile(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$")
# SNS stops retrying an HTTP/S delivery within 3,600 seconds (a hard limit), and a retry keeps
# the message's Timestamp: a message older than that is a replay, not a retry.
DEFAULT_MAX_AGE_SECONDS = 3600
# SNS signs with a handful of certificates per region; the cache only has to hold those.
CERTIFICATE_CACHE_SIZE = 32


class InvalidSnsMessage(Exception):
    """The request is not a genuine, current SNS message for us; the message says which
    check failed. Answer 4xx and do not process it: SNS does not retry a 4xx."""


class SnsVerifier:
    """Checks SNS messages; one instance per process, so certificates are fetched once.

    ``fetch_certificate`` gets a URL that has passed the host check and returns the PEM
    it serves; it should use HTTPS with certificate verification and a timeout. Its own
    errors (the network) propagate, so the caller can answer 5xx and let SNS retry.
    """

    def __init__(
        self,
        fetch_certificate: Callable[[str], Awaitable[bytes]],
        allowed_certificate_host: re.Pattern[str] = DEFAULT_CERTIFICATE_HOST,
        allowed_topics: frozenset[str] | None = None,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._fetch_certificate = fetch_certificate
        self._allowed_certificate_host = allowed_certificate_host
        self._allowed_topics = allowed_topics
        self._max_age = timedelta(seconds=max_age_seconds)
        self._now = now
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()

    async def verify(self, message: Mapping[str, Any]) -> None:
        """Return if ``message`` (the parsed JSON body) is genuine, raise InvalidSnsMessage if not.

        The cheap checks come first, so a forged or replayed message costs no certificate fetch.
        """
        kind = _text(message, "Type")
        signed_fields = SIGNED_FIELDS.get(kind)
        if signed_fields is None:
            raise InvalidSnsMessage(f"unknown SNS message Type {kind!r}")
        for field in (*ENVELOPE_FIELDS, *signed_fields):
            if field != "Subject":
                _text(message, field)
        hash_algorithm = SIGNATURE_HASHES.get(message["SignatureVersion"])
        if hash_algorithm is None:
            raise InvalidSnsMessage(f"unknown SignatureVersion {message['SignatureVersion']!r}")
        certificate_url: str = message["SigningCertURL"]
        self._check_certificate_url(certificate_url)
        if self._allowed_topics is not None and message["TopicArn"] not in self._allowed_topics:
            raise InvalidSnsMessage(f"TopicArn {message['TopicArn']!r} is not one of ours")
        self._check_fresh(_timestamp(message["Timestamp"], "Timestamp"))

        try:
            signature = base64.b64decode(message["Signature"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidSnsMessage("Signature is not base64") from None
        certificate = await self._certificate(certificate_url)
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise InvalidSnsMessage("the signing certificate's key is not RSA")
        try:
            public_key.verify(signature, string_to_sign(message), padding.PKCS1v15(), hash_algorithm())
        except InvalidSignature:
            raise InvalidSnsMessage("the signature does not match the message") from None

    def _check_certificate_url(self, url: str) -> None:
        # What we check must be what the fetch requests: a URL that parsers could read
        # differently (whitespace, backslashes, user info, a port) is refused outright.
        if any(char.isspace() or not char.isprintable() or char == "\\" for char in url):
            raise InvalidSnsMessage("SigningCertURL contains characters a URL cannot have")
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise InvalidSnsMessage("SigningCertURL is not https")
        host = parts.hostname or ""
        if parts.netloc.lower() != host or not self._allowed_certificate_host.fullmatch(host):
            raise InvalidSnsMessage(f"SigningCertURL host {parts.netloc!r} is not an SNS host")

    def _check_fresh(self, sent_at: datetime) -> None:
        age = self._now() - sent_at
        if age > self._max_age:
            raise InvalidSnsMessage(f"the message is too old to accept (sent {sent_at.isoformat()})")
        if -age > self._max_age:
            raise InvalidSnsMessage(f"the message is dated in the future ({sent_at.isoformat()})")

    async def _certificate(self, url: str) -> x509.Certificate:
        certificate = self._certificates.get(url)
        if certificate is not None:
            self._certificates.move_to_end(url)
        else:
            pem = await self._fetch_certificate(url)
            try:
                certificate = x509.load_pem_x509_certificate(pem)
            except ValueError:
                raise InvalidSnsMessage("the signing certificate is not a PEM certificate") from None
            self._certificates[url] = certificate
            if len(self._certificates) > CERTIFICATE_CACHE_SIZE:
                self._certificates.popitem(last=False)
        now = self._now()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise InvalidSnsMessage("the signing certificate is expired or not yet valid")
        return certificate


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The canonical form SNS signs: each signed field present as ``"Name\\nValue\\n"``."""
    fields = SIGNED_FIELDS[message["Type"]]
    return "".join(
        f"{field}\n{message[field]}\n" for field in fields if message.get(field) is not None
    ).encode()


def ses_receipt(notification: Mapping[str, Any]) -> Receipt | None:
    """The receipt of the SES event in a verified SNS Notification, or None for an event with
    nothing to record (sends, delays, opens, clicks, subscription changes, and event types
    SES adds later).

    One SNS message is one receipt, whatever the number of recipients it names, so the SNS
    ``MessageId`` is the receipt's id.
    """
    if notification.get("Type") != NOTIFICATION:
        raise InvalidSnsMessage(f"expected an SNS Notification, not {notification.get('Type')!r}")
    try:
        event = json.loads(_text(notification, "Message"))
    except json.JSONDecodeError:
        raise InvalidSnsMessage("the SNS Message is not JSON") from None
    if not isinstance(event, dict):
        raise InvalidSnsMessage("the SNS Message is not a JSON object")
    kind = event.get("eventType") or event.get("notificationType")
    if not isinstance(kind, str):
        raise InvalidSnsMessage("the SNS Message is not an SES event (no eventType)")
    if kind not in _EVENTS:
        return None
    detail_field, read = _EVENTS[kind]

    mail = _object(event, "mail")
    message_id = mail.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise InvalidSnsMessage("the SES event has no mail.messageId")
    detail = _object(event, detail_field)
    outcome, reason, suppress, suppress_reason = read(detail)
    occurred = detail.get("timestamp") or mail.get("timestamp") or notification.get("Timestamp")
    return Receipt(
        provider=PROVIDER,
        provider_message_id=message_id,
        outcome=outcome,
        receipt_id=_text(notification, "MessageId"),
        occurred_at=_timestamp(occurred, "the SES event's timestamp"),
        reason=reason,
        suppress=suppress,
        suppress_reason=suppress_reason,
    )


class _Reading(NamedTuple):
    """What an SES event says: the outcome, why, and which addresses to suppress, why."""

    outcome: Outcome
    reason: str | None
    suppress: tuple[str, ...]
    suppress_reason: str | None


def _delivery(detail: Mapping[str, Any]) -> _Reading:
    return _Reading(Outcome.DELIVERED, None, (), None)


def _bounce(detail: Mapping[str, Any]) -> _Reading:
    bounce_type = str(detail.get("bounceType") or "Undetermined")
    sub_type = str(detail.get("bounceSubType") or "Undetermined")
    recipients = _list(detail, "bouncedRecipients")
    codes = list(dict.fromkeys(str(r["diagnosticCode"]) for r in recipients if r.get("diagnosticCode")))
    explained = f": {' | '.join(codes)}" if codes else ""
    # Only a permanent bounce says the address is dead; a transient or undetermined one
    # (mailbox full, message too large) may succeed later, so the address is kept.
    if bounce_type == "Permanent":
        return _Reading(
            Outcome.BOUNCED,
            f"Permanent bounce ({sub_type}){explained}",
            _addresses(recipients),
            "hard bounce",
        )
    return _Reading(Outcome.BOUNCED, f"{bounce_type} bounce ({sub_type}), soft{explained}", (), None)


def _complaint(detail: Mapping[str, Any]) -> _Reading:
    feedback = detail.get("complaintFeedbackType")
    reason = f"Complaint ({feedback})" if feedback else "Complaint"
    return _Reading(
        Outcome.COMPLAINED, reason, _addresses(_list(detail, "complainedRecipients")), "complaint"
    )


def _reject(detail: Mapping[str, Any]) -> _Reading:
    return _Reading(
        Outcome.FAILED, f"Rejected by SES: {detail.get('reason') or 'no reason given'}", (), None
    )


def _rendering_failure(detail: Mapping[str, Any]) -> _Reading:
    template = detail.get("templateName")
    where = f" of template {template}" if template else ""
    message = detail.get("errorMessage") or "no error message"
    return _Reading(Outcome.FAILED, f"Rendering failure{where}: {message}", (), None)


# The SES events that make a receipt: the object beside ``mail`` that describes each, and
# how it is read.
_EVENTS: dict[str, tuple[str, Callable[[Mapping[str, Any]], _Reading]]] = {
    "Delivery": ("delivery", _delivery),
    "Bounce": ("bounce", _bounce),
    "Complaint": ("complaint", _complaint),
    "Reject": ("reject", _reject),
    "Rendering Failure": ("failure", _rendering_failure),
}


def _text(message: Mapping[str, Any], field: str) -> str:
    value = message.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidSnsMessage(f"the SNS message has no {field}")
    return value


def _object(event: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = event.get(field)
    if not isinstance(value, dict):
        raise InvalidSnsMessage(f"the SES event has no {field} object")
    return value


def _list(detail: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    value = detail.get(field)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _addresses(recipients: list[Mapping[str, Any]]) -> tuple[str, ...]:
    found = (r.get("emailAddress") for r in recipients)
    return tuple(dict.fromkeys(address for address in found if isinstance(address, str) and address))


def _timestamp(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidSnsMessage(f"{field} is missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidSnsMessage(f"{field} {value!r} is not an ISO 8601 time") from None
    # SNS and SES write UTC with a "Z"; a time without a zone is read as UTC too.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
