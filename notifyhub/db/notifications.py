"""Notifications and their delivery log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import asyncpg

from notifyhub.db import AnyConnection, PoolOrConnection
from notifyhub.model.channels import Channel
from notifyhub.model.messages import DeliveryEvent, DigestRule, EscalationStep, IntakeMessage
from notifyhub.model.status import CANCELLABLE_STATUSES, FINAL_STATUSES, Status

T = TypeVar("T")

NOTIFICATION_COLUMNS = (
    "id, tenant_id, idempotency_key, type, channel, recipient_id, recipient_address, "
    "template_id, payload, priority, status, status_reason, scheduled_at, created_at, updated_at, "
    "locale, category, workflow"
)


def in_lock_order(rows: Sequence[T], key: Callable[[T], Any]) -> list[T]:
    """``rows`` sorted by notification id, the order every batch update locks them in.

    Batches of one stage and of another (the send stage's claim, the delivery events
    writer) update overlapping notifications at the same time; locking in one order
    keeps them from deadlocking. (``through_outages`` runs a batch again if they do.)
    """
    return sorted(rows, key=key)


def as_api_dict(row: asyncpg.Record, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A notification row in the HTTP API's shape (``payload``: the row's, decoded already)."""
    notification = dict(row)
    notification["payload"] = json.loads(notification["payload"]) if payload is None else payload
    workflow = json.loads(notification.pop("workflow") or "{}")
    notification["digest"] = workflow.get("digest")
    notification["escalate"] = workflow.get("escalate")
    return notification


async def insert_pending(
    conn: PoolOrConnection, messages: Sequence[IntakeMessage]
) -> dict[uuid.UUID, asyncpg.Record]:
    """Insert new notifications (``pending``) in one statement; the rows stored, by id
    (an id that exists already is left as it is, and missing from the answer)."""
    if not messages:
        return {}
    rows = await conn.fetch(
        f"""INSERT INTO notifications (id, tenant_id, idempotency_key, type, channel, recipient_id,
                recipient_address, template_id, payload, priority, status, scheduled_at, workflow,
                locale, category)
            SELECT id, tenant_id, idempotency_key, type, channel, recipient_id, recipient_address,
                   template_id, payload::jsonb, priority, 'pending', scheduled_at, workflow::jsonb,
                   locale, category
              FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                          $7::text[], $8::uuid[], $9::text[], $10::smallint[], $11::text[],
                          $12::text[], $13::text[], $14::timestamptz[])
                AS g (id, tenant_id, idempotency_key, type, channel, recipient_id,
                      recipient_address, template_id, payload, priority, workflow, locale,
                      category, scheduled_at)
            ON CONFLICT (id) DO NOTHING
            RETURNING {NOTIFICATION_COLUMNS}""",
        *_columns(messages),
        [m.scheduled_at for m in messages],
    )
    return {row["id"]: row for row in rows}


def _columns(messages: Sequence[IntakeMessage]) -> tuple[list[Any], ...]:
    """The messages' columns as arrays for ``unnest``: id, tenant_id, idempotency_key, type,
    channel, recipient_id, recipient_address, template_id, payload, priority, workflow,
    locale, category."""
    return (
        [m.id for m in messages],
        [m.tenant_id for m in messages],
        [m.idempotency_key for m in messages],
        [m.type for m in messages],
        [m.channel.value for m in messages],
        [m.recipient_id for m in messages],
        [m.recipient_address for m in messages],
        [uuid.UUID(m.template_id) if m.template_id else None for m in messages],
        [json.dumps(m.payload) for m in messages],
        [m.priority for m in messages],
        [_workflow_json(m) for m in messages],
        [m.locale for m in messages],
        [m.category for m in messages],
    )


def _workflow_json(message: IntakeMessage) -> str | None:
    """What the notification asked beyond one send (digest, escalation), as stored."""
    workflow = message.model_dump(mode="json", include={"digest", "escalate"})
    workflow = {name: rule for name, rule in workflow.items() if rule is not None}
    return json.dumps(workflow) if workflow else None


async def get_many(
    conn: PoolOrConnection, wanted: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> dict[uuid.UUID, asyncpg.Record]:
    """The notifications (tenant, id) that exist, by id."""
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"""SELECT {NOTIFICATION_COLUMNS} FROM notifications
             WHERE (tenant_id, id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))""",
        [tenant for tenant, _ in wanted],
        [notification for _, notification in wanted],
    )
    return {row["id"]: row for row in rows}


async def delete_many(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_ids: Sequence[uuid.UUID]
) -> None:
    """Forget notifications that were never enqueued, and the idempotency keys they held."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND notification_id = ANY($2::uuid[])",
            tenant_id,
            notification_ids,
        )
        await conn.execute(
            "DELETE FROM notifications WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
            tenant_id,
            notification_ids,
        )


def as_intake_message(row: asyncpg.Record) -> IntakeMessage:
    """The accepted request a stored notification came from (to send it again).

    Built without validation: the row was judged when it was accepted, and PostgreSQL's
    jsonb does not give back every value as it was sent (``-2.4e+149`` comes back as a
    150-digit integer, which the input limits would now refuse).
    """
    return IntakeMessage.model_construct(
        id=row["id"],
        tenant_id=row["tenant_id"],
        idempotency_key=row["idempotency_key"],
        type=row["type"],
        channel=Channel(row["channel"]),
        recipient_id=row["recipient_id"],
        recipient_address=row["recipient_address"],
        template_id=str(row["template_id"]) if row["template_id"] else None,
        payload=json.loads(row["payload"]),
        priority=row["priority"],
        scheduled_at=row["scheduled_at"],
        locale=row["locale"],
        category=row["category"],
        **_workflow_of(row["workflow"]),
    )


def _workflow_of(stored: str | None) -> dict[str, Any]:
    """The digest rule and escalation steps of a stored notification, as fields."""
    workflow = json.loads(stored or "{}")
    fields: dict[str, Any] = {}
    if "digest" in workflow:
        fields["digest"] = DigestRule.model_validate(workflow["digest"])
    if "escalate" in workflow:
        fields["escalate"] = [EscalationStep.model_validate(s) for s in workflow["escalate"]]
    return fields


async def get(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        notification_id,
    )


async def exists(pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT 1 FROM notifications WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            notification_id,
        )
    )


# A batch of status events, in one statement: each event's delivery log row (once per event
# id), then each notification's status, forward only. Of one notification's events the one
# applied is the one a one-by-one application would leave: the highest rank; from sent on,
# the first; between the held states, and between processing and retrying, the last.
# Rows are locked in id order, as every batch update locks them (see ``in_lock_order``).
RECORD_EVENTS = """
WITH e AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::int[], $9::timestamptz[], $10::text[], $11::text[])
        AS e (event_id, notification_id, tenant_id, status, provider, provider_message_id,
              reason, attempt, occurred_at, locale, event)),
logged AS (
    INSERT INTO delivery_log (event_id, notification_id, tenant_id, status, provider,
                              provider_message_id, reason, attempt, occurred_at, locale, event)
    SELECT * FROM e
    ON CONFLICT (event_id) DO NOTHING),
locked AS (
    SELECT n.id, n.reopened_at FROM notifications n
     WHERE n.id = ANY($2::uuid[])
     ORDER BY n.id
       FOR UPDATE),
winner AS (
    SELECT DISTINCT ON (e.notification_id) e.notification_id, e.tenant_id, e.status, e.reason,
           e.occurred_at
      FROM e JOIN locked l ON l.id = e.notification_id
     -- an event from before a replay reopened the notification is history; an occurrence
     -- (an escalation step) is logged only
     WHERE (l.reopened_at IS NULL OR l.reopened_at <= e.occurred_at) AND e.event IS NULL
     ORDER BY e.notification_id, notification_status_rank(e.status) DESC,
              CASE WHEN notification_status_rank(e.status) >= 4 THEN e.occurred_at END,
              e.occurred_at DESC)
UPDATE notifications AS n
   SET status = w.status, status_reason = w.reason, updated_at = w.occurred_at
  FROM winner w
 WHERE n.id = w.notification_id AND n.tenant_id = w.tenant_id
   AND (notification_status_rank(n.status) < notification_status_rank(w.status)
        -- between the held states (scheduled, deferred) and between processing and
        -- retrying, the later event wins
        OR (notification_status_rank(n.status) = notification_status_rank(w.status)
            AND notification_status_rank(w.status) IN (2, 3) AND n.updated_at <= w.occurred_at))
"""


async def record_events(pool: PoolOrConnection, events: Sequence[DeliveryEvent]) -> None:
    """Record a batch of status events: the delivery log and the status (forward only).

    Idempotent: an event recorded twice leaves one log row and the same status.
    """
    if not events:
        return
    await pool.execute(
        RECORD_EVENTS,
        [e.event_id for e in events],
        [e.notification_id for e in events],
        [e.tenant_id for e in events],
        [e.status.value for e in events],
        [e.provider for e in events],
        [e.provider_message_id for e in events],
        [e.reason for e in events],
        [e.attempt for e in events],
        [e.occurred_at for e in events],
        [e.locale for e in events],
        [e.occurrence for e in events],
    )


async def page(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    filters: dict[str, str | None],
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int]:
    """A tenant's notifications, newest first, with optional recipient/channel/status filters."""
    where = (
        "tenant_id = $1 AND ($2::text IS NULL OR recipient_id = $2) "
        "AND ($3::text IS NULL OR channel = $3) AND ($4::text IS NULL OR status = $4)"
    )
    args = (tenant_id, filters.get("recipient_id"), filters.get("channel"), filters.get("status"))
    rows = await pool.fetch(
        f"SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE {where} "
        "ORDER BY created_at DESC, id DESC LIMIT $5 OFFSET $6",
        *args,
        limit,
        offset,
    )
    total = await pool.fetchval(f"SELECT count(*) FROM notifications WHERE {where}", *args)
    return rows, total


async def cancel(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, notification_id: uuid.UUID
) -> asyncpg.Record | None:
    """Mark a not-yet-sent notification cancelled; ``None`` when missing or past cancelling.

    The send stage claims a notification before calling its provider (``claim_many_for_sending``),
    so after this commits no provider is asked to send it, wherever the message is now.
    """
    return await pool.fetchrow(
        f"""UPDATE notifications SET status = 'cancelled', status_reason = 'cancelled by the tenant',
                   updated_at = now()
             WHERE tenant_id = $1 AND id = $2 AND status = ANY($3::text[])
             RETURNING {NOTIFICATION_COLUMNS}""",
        tenant_id,
        notification_id,
        [s.value for s in CANCELLABLE_STATUSES],
    )


# A deactivated tenant's notifications, and those to a suppressed address (the tenant's
# list, or every tenant's), are dropped (with a log row) instead of claimed, in the same
# statement: nothing of theirs reaches a provider after the deactivation or suppression.
CLAIM_FOR_SENDING = """
WITH wanted AS (
    SELECT w.id, w.tenant_id, t.is_active,
           (SELECT s.reason FROM suppressions s
             WHERE coalesce(s.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)
                       IN (w.tenant_id, '00000000-0000-0000-0000-000000000000'::uuid)
               AND s.channel = n.channel AND s.address = lower(n.recipient_address)
             LIMIT 1) AS suppressed
      FROM unnest($1::uuid[], $2::uuid[]) AS w (id, tenant_id)
      JOIN tenants t ON t.id = w.tenant_id
      JOIN notifications n ON n.id = w.id AND n.tenant_id = w.tenant_id),
dropped AS (
    UPDATE notifications AS n
       SET status = 'dropped', updated_at = now(),
           status_reason = CASE WHEN NOT w.is_active THEN $4
                                ELSE 'the address is suppressed (' || w.suppressed || ')' END
      FROM wanted w
     WHERE n.id = w.id AND n.tenant_id = w.tenant_id
       AND (NOT w.is_active OR w.suppressed IS NOT NULL)
       AND NOT (n.status = ANY($3::text[]))
    RETURNING n.id, n.tenant_id, n.status_reason),
logged AS (
    INSERT INTO delivery_log (event_id, notification_id, tenant_id, status, reason, occurred_at)
    SELECT gen_random_uuid(), id, tenant_id, 'dropped', status_reason, now() FROM dropped
    RETURNING event_id, notification_id, reason, occurred_at),
claimed AS (
    UPDATE notifications AS n SET status = 'processing', updated_at = now()
      FROM wanted w
     WHERE n.id = w.id AND n.tenant_id = w.tenant_id AND w.is_active AND w.suppressed IS NULL
       AND NOT (n.status = ANY($3::text[]))
    RETURNING n.id)
SELECT id, NULL::uuid AS event_id, NULL AS reason, NULL::timestamptz AS occurred_at FROM claimed
UNION ALL
SELECT notification_id, event_id, reason, occurred_at FROM logged
"""
TENANT_DEACTIVATED = "the tenant is deactivated"


@dataclass(frozen=True)
class Dropped:
    """A notification the claim dropped instead, with its log row's event id and reason."""

    notification_id: uuid.UUID
    event_id: uuid.UUID
    reason: str
    occurred_at: datetime


async def claim_many_for_sending(
    pool: asyncpg.Pool, notifications: Sequence[tuple[uuid.UUID, uuid.UUID]]
) -> tuple[set[uuid.UUID], list[Dropped]]:
    """Atomically move notifications (id, tenant) to ``processing`` unless they are final.

    Those left out must not be sent: cancelled, (redelivered messages) sent already, or
    dropped now because their tenant is deactivated or their address suppressed (the
    second answer: those, whose status and log row are written).
    """
    notifications = in_lock_order(notifications, key=lambda n: n[0])
    rows = await pool.fetch(
        CLAIM_FOR_SENDING,
        [n for n, _ in notifications],
        [t for _, t in notifications],
        [s.value for s in FINAL_STATUSES],
        TENANT_DEACTIVATED,
    )
    claimed = {row["id"] for row in rows if row["event_id"] is None}
    dropped = [
        Dropped(row["id"], row["event_id"], row["reason"], row["occurred_at"])
        for row in rows
        if row["event_id"] is not None
    ]
    return claimed, dropped


# New notifications with their first status, and that status's delivery log row; the
# answer is the ids to pass on: those stored now, and those stored before (a record read
# again) that are not final yet.
STORE_ACCEPTED = """
WITH given AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::uuid[], $9::text[], $10::smallint[], $11::text[],
                         $12::text[], $13::text[], $14::text[], $15::timestamptz[], $16::uuid[],
                         $17::timestamptz[])
        AS g (id, tenant_id, idempotency_key, type, channel, recipient_id, recipient_address,
              template_id, payload, priority, workflow, locale, category, status, scheduled_at,
              event_id, occurred_at)),
stored AS (
    INSERT INTO notifications (id, tenant_id, idempotency_key, type, channel, recipient_id,
                               recipient_address, template_id, payload, priority, workflow,
                               locale, category, status, scheduled_at, created_at, updated_at)
    SELECT id, tenant_id, idempotency_key, type, channel, recipient_id, recipient_address,
           template_id, payload::jsonb, priority, workflow::jsonb, locale, category, status,
           scheduled_at, occurred_at, occurred_at
      FROM given
    ON CONFLICT (id) DO NOTHING
    RETURNING id),
logged AS (
    INSERT INTO delivery_log (event_id, notification_id, tenant_id, status, attempt, occurred_at)
    SELECT g.event_id, g.id, g.tenant_id, g.status, 1, g.occurred_at
      FROM given g JOIN stored s ON s.id = g.id
    ON CONFLICT (event_id) DO NOTHING)
SELECT id, true AS new FROM stored
UNION ALL
SELECT n.id, false AS new FROM notifications n
 WHERE n.id = ANY($1::uuid[]) AND NOT (n.status = ANY($18::text[]))
"""


async def store_accepted(
    pool: asyncpg.Pool,
    accepted: Sequence[DeliveryEvent],
    messages: Sequence[IntakeMessage],
    retention_seconds: float,
) -> dict[uuid.UUID, bool]:
    """Store notifications from Kafka producers (``messages``), each with the status its
    event in ``accepted`` says (queued or scheduled) and that event's log row, in one
    transaction with their idempotency keys. The ids that go on, each with whether it was
    stored now: each key's owner, and every notification without a key that is not final
    (a record read again after a worker died is passed on again; the send stage's claim
    keeps it from being sent twice).
    """
    if not any(m.idempotency_key for m in messages):
        # One statement: no transaction of its own to open and commit.
        rows = await pool.fetch(
            STORE_ACCEPTED, *_store_arguments(list(zip(accepted, messages, strict=True)))
        )
        return {row["id"]: row["new"] for row in rows}
    async with pool.acquire() as conn, conn.transaction():
        owners = await claim_idempotency_keys(conn, messages, retention_seconds)
        wanted = [
            (event, message)
            for event, message in zip(accepted, messages, strict=True)
            if not message.idempotency_key
            or owners.get((message.tenant_id, message.idempotency_key)) == message.id
        ]
        if not wanted:
            return {}
        rows = await conn.fetch(STORE_ACCEPTED, *_store_arguments(wanted))
    return {row["id"]: row["new"] for row in rows}


def _store_arguments(
    wanted: Sequence[tuple[DeliveryEvent, IntakeMessage]],
) -> tuple[list[Any], ...]:
    messages = [m for _, m in wanted]
    return (
        *_columns(messages),
        [e.status.value for e, _ in wanted],
        [m.scheduled_at for m in messages],
        [e.event_id for e, _ in wanted],
        [e.occurred_at for e, _ in wanted],
        [s.value for s in FINAL_STATUSES],
    )


# Concurrent claims of one key queue on its row, in key order (no two batches wait on
# each other); an expired key is taken over.
CLAIM_KEYS = """
INSERT INTO idempotency_keys (tenant_id, idempotency_key, notification_id, expires_at)
SELECT t, k, n, now() + make_interval(secs => $4)
  FROM unnest($1::uuid[], $2::text[], $3::uuid[]) AS w (t, k, n)
 ORDER BY t, k
ON CONFLICT (tenant_id, idempotency_key) DO UPDATE
    SET notification_id = EXCLUDED.notification_id, expires_at = EXCLUDED.expires_at
    WHERE idempotency_keys.expires_at <= now()
RETURNING tenant_id, idempotency_key, notification_id
"""

KEY_OWNERS = """
SELECT i.tenant_id, i.idempotency_key, i.notification_id
  FROM idempotency_keys i JOIN unnest($1::uuid[], $2::text[]) AS w (t, k)
    ON i.tenant_id = w.t AND i.idempotency_key = w.k
"""

IdempotencyKey = tuple[uuid.UUID, str]


async def claim_idempotency_keys(
    conn: AnyConnection,
    messages: Sequence[IntakeMessage],
    retention_seconds: float,
) -> dict[IdempotencyKey, uuid.UUID]:
    """The notification that owns each idempotency key the messages carry: the first message
    carrying a key that is new or expired, else the notification it already stands for.
    A key older than ``retention_seconds`` is expired.
    """
    first: dict[IdempotencyKey, uuid.UUID] = {}
    for message in messages:
        if message.idempotency_key:
            first.setdefault((message.tenant_id, message.idempotency_key), message.assigned_id)
    if not first:
        return {}
    keys = list(first)
    rows = await conn.fetch(
        CLAIM_KEYS,
        [tenant for tenant, _ in keys],
        [key for _, key in keys],
        [first[k] for k in keys],
        retention_seconds,
    )
    owners = {(row["tenant_id"], row["idempotency_key"]): row["notification_id"] for row in rows}
    others = [k for k in keys if k not in owners]
    if others:
        rows = await conn.fetch(KEY_OWNERS, [tenant for tenant, _ in others], [key for _, key in others])
        owners.update(
            {(row["tenant_id"], row["idempotency_key"]): row["notification_id"] for row in rows}
        )
    return owners


class Failure(NamedTuple):
    """A notification the pipeline gave up on: its ``failed`` event's id, and why."""

    event_id: uuid.UUID
    notification_id: uuid.UUID
    tenant_id: uuid.UUID
    reason: str
    occurred_at: datetime


# Fail notifications that are not final yet, with each one's delivery log row, in one
# statement; the answer is the failed events to announce: those failed now, and those this
# same statement failed before (a batch run again after a crash, whose events may never
# have been produced). Rows are locked in id order, as every batch update locks them.
FAIL_UNFINISHED = """
WITH f AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::timestamptz[])
        AS f (event_id, notification_id, tenant_id, reason, occurred_at)),
locked AS (
    SELECT n.id FROM notifications n
     WHERE n.id = ANY($2::uuid[])
     ORDER BY n.id
       FOR UPDATE),
failed AS (
    UPDATE notifications AS n
       SET status = 'failed', status_reason = f.reason, updated_at = f.occurred_at
      FROM f JOIN locked l ON l.id = f.notification_id
     WHERE n.id = f.notification_id AND n.tenant_id = f.tenant_id
       AND NOT (n.status = ANY($6::text[]))
       -- a failure from before a replay reopened the notification is history
       AND (n.reopened_at IS NULL OR n.reopened_at <= f.occurred_at)
    RETURNING n.id, n.tenant_id, n.channel, n.recipient_id, f.event_id, f.reason, f.occurred_at),
logged AS (
    INSERT INTO delivery_log (event_id, notification_id, tenant_id, status, reason, attempt,
                              occurred_at)
    SELECT event_id, id, tenant_id, 'failed', reason, 1, occurred_at FROM failed
    ON CONFLICT (event_id) DO NOTHING)
SELECT * FROM failed
UNION ALL
SELECT n.id, n.tenant_id, n.channel, n.recipient_id, d.event_id, d.reason, d.occurred_at
  FROM delivery_log d JOIN notifications n ON n.id = d.notification_id
 WHERE d.event_id = ANY($1::uuid[]) AND n.status = 'failed'
"""


async def fail_unfinished(conn: PoolOrConnection, failures: Sequence[Failure]) -> list[DeliveryEvent]:
    """Mark notifications ``failed`` with the reason, forward only (a final one, or one a
    replay reopened after the failure, is left as it is), with their delivery log rows.

    The ``failed`` events of those failed, written already (to be announced, not written
    again). Idempotent by event id.
    """
    if not failures:
        return []
    rows = await conn.fetch(
        FAIL_UNFINISHED,
        [f.event_id for f in failures],
        [f.notification_id for f in failures],
        [f.tenant_id for f in failures],
        [f.reason for f in failures],
        [f.occurred_at for f in failures],
        [s.value for s in FINAL_STATUSES],
    )
    return [
        DeliveryEvent(
            event_id=row["event_id"],
            notification_id=row["id"],
            tenant_id=row["tenant_id"],
            channel=row["channel"],
            recipient_id=row["recipient_id"],
            status=Status.FAILED,
            reason=row["reason"],
            occurred_at=row["occurred_at"],
        )
        for row in rows
    ]


# What the sweep looks for: notifications not updated for a while in a status some stage
# should have moved them on from. Spelled as migration 0009's index predicate.
UNFINISHED = "status IN ('pending', 'queued', 'processing')"


async def redrive_stuck(
    pool: asyncpg.Pool,
    stuck_seconds: float,
    limit: int,
    redrive: Callable[[Sequence[asyncpg.Record]], Awaitable[None]],
) -> list[asyncpg.Record]:
    """Re-drive, once, up to ``limit`` notifications unfinished and not updated for
    ``stuck_seconds`` (oldest first); the rows re-driven.

    One transaction: take the rows (``SKIP LOCKED``: sweeps on several workers, or a stage
    updating one, never wait for each other); ``redrive`` them (produce their records and
    wait for the broker); mark them re-driven; commit. If ``redrive`` fails nothing is
    marked, and the next sweep tries again.
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT {NOTIFICATION_COLUMNS} FROM notifications
                 WHERE {UNFINISHED} AND redriven_at IS NULL
                   AND updated_at < now() - make_interval(secs => $1)
                 ORDER BY updated_at
                 LIMIT $2
                   FOR UPDATE SKIP LOCKED""",
            stuck_seconds,
            limit,
        )
        if rows:
            await redrive(rows)
            await conn.execute(
                "UPDATE notifications SET redriven_at = now() WHERE id = ANY($1::uuid[])",
                [row["id"] for row in rows],
            )
    return list(rows)


async def fail_stuck(
    pool: asyncpg.Pool,
    stuck_seconds: float,
    limit: int,
    reason: Callable[[asyncpg.Record], str],
) -> list[DeliveryEvent]:
    """Fail up to ``limit`` notifications re-driven ``stuck_seconds`` ago or earlier that
    are still unfinished and not updated since ``stuck_seconds`` either, each with
    ``reason(row)`` (the row has ``status``, ``updated_at`` and ``redriven_at``).

    Their ``failed`` events, written already (see ``fail_unfinished``).
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            f"""SELECT id, tenant_id, status, updated_at, redriven_at FROM notifications
                 WHERE {UNFINISHED}
                   AND updated_at < now() - make_interval(secs => $1)
                   AND redriven_at < now() - make_interval(secs => $1)
                 ORDER BY updated_at
                 LIMIT $2
                   FOR UPDATE SKIP LOCKED""",
            stuck_seconds,
            limit,
        )
        now = datetime.now(UTC)
        return await fail_unfinished(
            conn,
            [Failure(uuid.uuid4(), row["id"], row["tenant_id"], reason(row), now) for row in rows],
        )


DELIVERY_LOG_COLUMNS = (
    "event_id, notification_id, status, attempt, provider, provider_message_id, reason, locale, "
    "event, occurred_at"
)


async def delivery_log_page(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    notification_id: uuid.UUID,
    limit: int,
    offset: int,
) -> tuple[list[asyncpg.Record], int] | None:
    """One notification's delivery log, oldest first (ties in log order), and how many
    entries it has in all; ``None`` when the tenant has no such notification."""
    if not await exists(pool, tenant_id, notification_id):
        return None
    where = "notification_id = $1 AND tenant_id = $2"
    rows = await pool.fetch(
        f"SELECT {DELIVERY_LOG_COLUMNS} FROM delivery_log WHERE {where} "
        "ORDER BY occurred_at, id LIMIT $3 OFFSET $4",
        notification_id,
        tenant_id,
        limit,
        offset,
    )
    total = await pool.fetchval(
        f"SELECT count(*) FROM delivery_log WHERE {where}", notification_id, tenant_id
    )
    return list(rows), total


class SentMessage(NamedTuple):
    """The notification a provider's message id belongs to."""

    notification_id: uuid.UUID
    tenant_id: uuid.UUID
    channel: Channel
    recipient_id: str


async def by_provider_message(
    pool: asyncpg.Pool, wanted: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], SentMessage]:
    """The notifications of these (provider, provider message id) pairs that were sent."""
    if not wanted:
        return {}
    rows = await pool.fetch(
        """SELECT DISTINCT ON (d.provider, d.provider_message_id)
                  d.provider, d.provider_message_id, n.id, n.tenant_id, n.channel, n.recipient_id
             FROM unnest($1::text[], $2::text[]) AS w (provider, message_id)
             JOIN delivery_log d ON d.provider = w.provider AND d.provider_message_id = w.message_id
             JOIN notifications n ON n.id = d.notification_id AND n.tenant_id = d.tenant_id""",
        [provider for provider, _ in wanted],
        [message_id for _, message_id in wanted],
    )
    return {
        (row["provider"], row["provider_message_id"]): SentMessage(
            row["id"], row["tenant_id"], Channel(row["channel"]), row["recipient_id"]
        )
        for row in rows
    }
