"""The sweep: every accepted notification reaches a final state, even one whose record the
pipeline lost (a produce that never reached Kafka, a status event dead-lettered, a stage
that skipped it through a bug).

A notification left in ``pending``, ``queued`` or ``processing`` for
``NOTIFYHUB_SWEEP_STUCK_SECONDS`` (nothing updated it) is re-driven once: produced to
enrich again, as the HTTP API produced it first (with its entry status when it never got
one). A duplicate is never sent twice: the copy is keyed like the original, so it reaches
the send stage behind it, on the same partition, and the send stage claims a notification
in PostgreSQL only while it is not final. One still stuck
``NOTIFYHUB_SWEEP_GIVE_UP_SECONDS`` after its re-drive fails, with a reason naming its
status and since when; its ``failed`` event goes to webhooks like any other.

The same run publishes the provider receipts a receiver kept in PostgreSQL while Kafka
would not take them (``db.receipt_outbox``).

A timer on the group's leader runs it every ``NOTIFYHUB_SWEEP_INTERVAL_SECONDS``, at most
``MAX_PER_RUN`` notifications of each kind a run. On every worker it would be safe too:
the rows are taken ``FOR UPDATE SKIP LOCKED`` and marked in the same transaction (``db.notifications``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
from pydantic import ValidationError

from notifyhub.app import app, publish_all, resources, settings, topics
from notifyhub.cores.entry import entry_event, entry_records
from notifyhub.cores.intake import as_notification
from notifyhub.cores.records import PERSISTED, Outgoing, event_record
from notifyhub.db import notifications, receipt_outbox
from notifyhub.model.status import Status
from notifyhub.observability.metrics import RECEIPT_OUTBOX, SWEPT_NOTIFICATIONS
from notifyhub.runtime import clock

logger = logging.getLogger(__name__)


# Bounds a run's transaction (its rows stay locked until the broker has their records);
# a larger backlog of stuck notifications takes a few runs.
MAX_PER_RUN = 500
PUBLISH_TIMEOUT_SECONDS = 10.0
# Kept receipts are published MAX_PER_RUN to a transaction, up to this many a run: an
# outage of a minute at SES's event rate is cleared in one run.
RECEIPT_BATCHES_PER_RUN = 20


def redrive_records(row: asyncpg.Record, now: float) -> list[Outgoing]:
    """A stored notification's records again: to enrich (or held, when its ``scheduled_at``
    is ahead), after its entry event when that moves it on (a ``pending`` one never got to
    ``queued``; a ``queued`` one due later is ``scheduled``). Raises ValidationError for a
    row that is no longer a valid request."""
    notification = as_notification(notifications.as_intake_message(row))
    event = entry_event(notification, now)
    announced, onward = entry_records(topics, notification, event, persisted=False)
    moves_on = row["status"] == Status.PENDING or (
        row["status"] == Status.QUEUED and event.status is Status.SCHEDULED
    )
    return [announced, onward] if moves_on else [onward]


async def _redrive(rows: Sequence[asyncpg.Record]) -> None:
    now = clock.now()
    records: list[Outgoing] = []
    for row in rows:
        try:
            records += redrive_records(row, now)
        except ValidationError as exc:
            # Left marked as re-driven: it fails when its time is up, like one that stays stuck.
            logger.warning(
                "sweep: notification %s (tenant %s) cannot be re-driven: %s",
                row["id"],
                row["tenant_id"],
                exc,
            )
            continue
        logger.info(
            "sweep: re-driving notification %s (tenant %s), %s since %s",
            row["id"],
            row["tenant_id"],
            row["status"],
            row["updated_at"].isoformat(),
        )
        SWEPT_NOTIFICATIONS.labels(action="redriven").inc()
    await publish_all(records, PUBLISH_TIMEOUT_SECONDS)


def stuck_reason(row: asyncpg.Record) -> str:
    return (
        f"stuck in {row['status']} since {row['updated_at'].isoformat(timespec='seconds')}, "
        f"re-driven at {row['redriven_at'].isoformat(timespec='seconds')} to no avail"
    )


async def _publish_receipts(kept: Sequence[receipt_outbox.Kept]) -> None:
    records = [Outgoing(topics.receipts, key, value) for key, value in kept]
    await publish_all(records, PUBLISH_TIMEOUT_SECONDS)


async def sweep() -> None:
    """One run: publish the receipts kept while Kafka was away, re-drive what is newly
    stuck, then fail what stayed stuck after its re-drive."""
    pool = await resources.db()
    for _ in range(RECEIPT_BATCHES_PER_RUN):
        published = await receipt_outbox.publish_kept(
            pool, topics.receipts, MAX_PER_RUN, _publish_receipts
        )
        if published:
            logger.info("sweep: published %d receipts kept while Kafka was away", published)
            RECEIPT_OUTBOX.labels(action="published").inc(published)
        if published < MAX_PER_RUN:
            break
    await notifications.redrive_stuck(pool, settings.sweep_stuck_seconds, MAX_PER_RUN, _redrive)
    failed = await notifications.fail_stuck(
        pool, settings.sweep_give_up_seconds, MAX_PER_RUN, stuck_reason
    )
    for event in failed:
        logger.warning(
            "sweep: notification %s (tenant %s) failed: %s",
            event.notification_id,
            event.tenant_id,
            event.reason,
        )
    if failed:
        SWEPT_NOTIFICATIONS.labels(action="failed").inc(len(failed))
        # Written already: the delivery events stage only fans them out to webhooks.
        await publish_all(
            [event_record(topics.delivery_events, event, PERSISTED) for event in failed],
            PUBLISH_TIMEOUT_SECONDS,
        )


# Faust hides App.timer from mypy (no_type_check), so its decorator is untyped.
@app.timer(settings.sweep_interval_seconds, on_leader=True)  # type: ignore[untyped-decorator]
async def sweep_stuck_notifications() -> None:
    try:
        await sweep()
    except Exception:
        # An outage or a bug: the next run tries again. An exception out of a Faust timer
        # crashes the worker, and a sweep is not worth stopping the pipeline for.
        logger.exception(
            "sweep: this run failed; the next one in %.0fs", settings.sweep_interval_seconds
        )
