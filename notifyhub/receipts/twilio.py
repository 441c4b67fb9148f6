"""Twilio's webhooks: status callbacks become receipts, STOP and START replies opt-out changes.

Every webhook is signed (``X-Twilio-Signature``) with the account's Auth Token; during a
token rotation both the new and the old token are listed, so callbacks signed before the
switch still pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from twilio.request_validator import RequestValidator

from notifyhub.receipts.model import Outcome, Receipt

PROVIDER = "twilio"

STATUS_OUTCOMES: dict[str, Outcome] = {
    "sent": Outcome.SENT,
    "delivered": Outcome.DELIVERED,
    "undelivered": Outcome.UNDELIVERED,
    "failed": Outcome.FAILED,
    # WhatsApp and RCS read receipts: reading implies delivery.
    "read": Outcome.DELIVERED,
}
# Steps before the carrier has the message, or not about an outgoing message at all.
IGNORED_STATUSES = frozenset(
    {"queued", "accepted", "sending", "scheduled", "canceled", "receiving", "received"}
)
# The codes an operator meets most; any other is reported by number alone.
ERROR_MEANINGS: dict[str, str] = {
    "30003": "unreachable destination handset",
    "30004": "message blocked",
    "30005": "unknown destination handset",
    "30006": "landline or unreachable carrier",
    "30007": "filtered by the carrier (carrier violation)",
    "21610": "recipient has unsubscribed (replied STOP)",
}

# Twilio's default keywords, matched as it matches them: the whole body, any case. Twilio
# blocks or unblocks the number itself on these, so our record follows Twilio's, even for
# a YES that was meant as an answer to something else.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})


def signature_is_valid(
    auth_tokens: Sequence[str], url: str, params: Mapping[str, str], signature: str
) -> bool:
    """Whether ``signature`` (the ``X-Twilio-Signature`` header) signs this request with one
    of ``auth_tokens``.

    ``url`` is the full URL Twilio requested, query string included; ``params`` the form
    fields of the POST (an aiohttp ``MultiDictProxy`` keeps repeated fields). The SDK checks
    the URL both with and without its default port, since Twilio signs either form, and
    compares without stopping at the first differing character.
    """
    for token in auth_tokens:
        # An empty token is a configuration gap; HMAC with an empty key is forgeable by anyone.
        if not token:
            continue
        try:
            if RequestValidator(token).validate(url, params, signature):
                return True
        except ValueError:
            # urllib refuses a malformed port: no signature can be right for that URL.
            return False
    return False


def status_receipt(params: Mapping[str, str], now: datetime) -> Receipt | None:
    """The receipt of a StatusCallback, or None for a status with nothing to record.

    Twilio sends no event time, so ``now`` (aware) is the time it reached us. A status this
    module does not know is not recorded either: Twilio adds statuses for new channels, and
    refusing the callback would not make it recordable.
    """
    sid = _required(params, "MessageSid")
    status = _required(params, "MessageStatus").lower()
    outcome = STATUS_OUTCOMES.get(status)
    if outcome is None:
        return None
    reason = None
    if outcome in (Outcome.UNDELIVERED, Outcome.FAILED):
        reason = _error_reason(params.get("ErrorCode"), params.get("ErrorMessage"))
    return Receipt(
        provider=PROVIDER,
        provider_message_id=sid,
        outcome=outcome,
        # One callback per status and message: a resent callback has the same id.
        receipt_id=f"{sid}:{status}",
        occurred_at=now,
        reason=reason,
    )


def opt_out_change(params: Mapping[str, str]) -> tuple[str, bool] | None:
    """``(sender, opted_out)`` when an incoming SMS is an opt-out or opt-in keyword, else None."""
    keyword = params.get("Body", "").strip().upper()
    if keyword in OPT_OUT_KEYWORDS:
        return _required(params, "From"), True
    if keyword in OPT_IN_KEYWORDS:
        return _required(params, "From"), False
    return None


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise ValueError(f"the Twilio webhook has no {name}")
    return value


def _error_reason(code: str | None, message: str | None) -> str | None:
    if not code:
        return None
    meaning = ERROR_MEANINGS.get(code) or message
    return f"Twilio error {code}: {meaning}" if meaning else f"Twilio error {code}"
