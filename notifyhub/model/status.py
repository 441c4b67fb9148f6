"""The notification lifecycle: every status and which transitions are allowed.

A status only moves forward (the ranks below, mirrored by the SQL function
``notification_status_rank``), so events that arrive twice or late never undo a
later status.

    pending ──> queued ──> [scheduled | deferred] ──> processing ──> sent ──> delivered ──> complained
       │           └──────────────┴──────────────────────┴ ⇅         │    ├─> undelivered | bounced
       │                                                 retrying      │    └─> failed
       │                                                               └─> delivered | failed
       │                                              (and from any before sent) dropped | cancelled
       └─────────────────────> digested (the first stage of sending it found a digest rule)

``scheduled`` and ``deferred`` are held states (waiting for ``scheduled_at`` or for the
end of the recipient's quiet hours); a notification may move between them.
``retrying`` is held too: a send failed temporarily (or every provider's circuit breaker
was open) and the next attempt waits for its backoff; ``processing`` and ``retrying``
alternate until the send's outcome. The outcome is ``delivered`` where the provider's
answer is the delivery (the in-app inbox, the sink), else ``sent``: the provider took it,
and its receipt, when it sends one (Twilio's status callbacks, SES events through SNS),
moves it on to ``delivered``, ``undelivered``, ``bounced`` or ``failed``; a complaint
comes after a delivery. FCM and SMTP send no receipts: push and SMTP mail stay ``sent``.
``digested`` is final: the notification joined a digest (the reason names it), and the
digest is a notification of its own. One exception to "forward only": replaying a send's
dead letter (admin DLQ API) reopens its ``failed`` notification as ``queued``.
"""

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"  # accepted by the HTTP API, not yet taken in by the pipeline
    QUEUED = "queued"  # validated and persisted by intake, on its way to a channel
    SCHEDULED = "scheduled"  # held until its scheduled_at
    DEFERRED = "deferred"  # held until the recipient's quiet hours end
    PROCESSING = "processing"  # handed to a channel provider
    RETRYING = "retrying"  # a send failed temporarily; the next attempt is waiting its turn
    SENT = "sent"  # the provider accepted it; its receipt, if it sends one, says what followed
    DELIVERED = "delivered"  # delivered: in the inbox, or the provider's receipt says so
    UNDELIVERED = "undelivered"  # the provider's receipt: it could not be delivered (SMS)
    BOUNCED = "bounced"  # the provider's receipt: the mail bounced (hard bounces suppress)
    COMPLAINED = "complained"  # the recipient marked the mail as spam (suppresses the address)
    FAILED = "failed"  # the provider refused it, or every attempt failed
    DROPPED = "dropped"  # the pipeline decided not to send it (reason recorded)
    CANCELLED = "cancelled"  # cancelled by the tenant before it was sent
    DIGESTED = "digested"  # collected into a digest, which is sent as its own notification


# The pipeline is done with these: nothing is sent for them again (receipts may still move
# a sent or delivered one on).
FINAL_STATUSES = frozenset(
    {
        Status.SENT,
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.BOUNCED,
        Status.COMPLAINED,
        Status.FAILED,
        Status.DROPPED,
        Status.CANCELLED,
        Status.DIGESTED,
    }
)
# What a provider's receipt may report.
RECEIPT_STATUSES = frozenset(
    {Status.DELIVERED, Status.UNDELIVERED, Status.BOUNCED, Status.COMPLAINED, Status.FAILED}
)
# Statuses a tenant may still cancel: nothing has been handed to a provider yet.
CANCELLABLE_STATUSES = frozenset(
    {Status.PENDING, Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.RETRYING}
)
HELD_STATUSES = frozenset({Status.SCHEDULED, Status.DEFERRED})
