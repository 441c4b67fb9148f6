"""The notification lifecycle: every status and which transitions are allowed.

A status only moves forward (the ranks below, mirrored by the SQL function
``notification_status_rank``), so events that arrive twice or late never undo a
later status. Final statuses never change.

    pending ──> queued ──> [scheduled | deferred] ──> processing ──> delivered | failed
       │           └──────────────┴──────────────────────┴ ⇅ ──> dropped | cancelled
       │                                                 retrying
       └─────────────────────> digested (the first stage of sending it found a digest rule)

``scheduled`` and ``deferred`` are held states (waiting for ``scheduled_at`` or for the
end of the recipient's quiet hours); a notification may move between them.
``digested`` is final: the notification joined a digest (the reason names it), and the
digest is a notification of its own. ``retrying`` is held too: a send failed temporarily
(or every provider's circuit breaker was open) and the next attempt waits for its
backoff; ``processing`` and ``retrying`` alternate until a final status. One exception
to "forward only": replaying a send's dead letter (admin DLQ API) reopens its ``failed``
notification as ``queued``.
"""

from enum import StrEnum


class Status(StrEnum):
    PENDING = "pending"  # accepted by the HTTP API, not yet taken in by the pipeline
    QUEUED = "queued"  # validated and persisted by intake, on its way to a channel
    SCHEDULED = "scheduled"  # held until its scheduled_at
    DEFERRED = "deferred"  # held until the recipient's quiet hours end
    PROCESSING = "processing"  # handed to a channel provider
    RETRYING = "retrying"  # a send failed temporarily; the next attempt is waiting its turn
    DELIVERED = "delivered"  # the provider accepted it
    FAILED = "failed"  # the provider refused it, or every attempt failed
    DROPPED = "dropped"  # the pipeline decided not to send it (reason recorded)
    CANCELLED = "cancelled"  # cancelled by the tenant before it was sent
    DIGESTED = "digested"  # collected into a digest, which is sent as its own notification


FINAL_STATUSES = frozenset(
    {Status.DELIVERED, Status.FAILED, Status.DROPPED, Status.CANCELLED, Status.DIGESTED}
)
# Statuses a tenant may still cancel: nothing has been handed to a provider yet.
CANCELLABLE_STATUSES = frozenset(
    {Status.PENDING, Status.QUEUED, Status.SCHEDULED, Status.DEFERRED, Status.RETRYING}
)
HELD_STATUSES = frozenset({Status.SCHEDULED, Status.DEFERRED})
