"""``/api/v1/notifications``: send (one or in bulk), list, read and cancel notifications."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from faust.web import View
from pydantic import Field, ValidationError

from notifyhub import tracing
from notifyhub.agents.accept import accepted_key
from notifyhub.app import accepted_topics, app, delivery_events_topic, publish, resources, settings
from notifyhub.channels import Channel
from notifyhub.db import notifications
from notifyhub.messages import (
    DeliveryEvent,
    IntakeMessage,
    Message,
    Notification,
    NotificationRequest,
    RecipientId,
    ShortText,
)
from notifyhub.outages import OUTAGES
from notifyhub.resolve import Unresolvable, resolve
from notifyhub.status import Status
from notifyhub.web.auth import Caller, authenticate_tenant
from notifyhub.web.inputs import page_of, parse_body, parse_uuid, parse_value
from notifyhub.web.responses import ApiError, ok, read_json_object, validation_details

logger = logging.getLogger(__name__)

# How long a 202 may wait for Kafka to acknowledge the messages before the request
# answers 503 instead; the client can retry with the same idempotency key.
PUBLISH_TIMEOUT_SECONDS = 10.0
MAX_BULK_RECIPIENTS = 1000


async def _publish_all(messages: list[IntakeMessage]) -> None:
    """Produce every message to its accepted lane and wait for Kafka's acknowledgement of all
    (concurrently, unlike ``app.publish``); each carries the request's trace."""
    headers = tracing.kafka_headers()
    pending = [
        await accepted_topics.for_priority(m.priority).send(
            key=accepted_key(m), value=m.to_bytes(), headers=headers
        )
        for m in messages
    ]
    await asyncio.wait_for(asyncio.gather(*pending), PUBLISH_TIMEOUT_SECONDS)


def _unavailable() -> ApiError:
    return ApiError(
        "SERVICE_UNAVAILABLE", "the queue is unavailable; retry later", headers={"Retry-After": "5"}
    )


def _checked(wanted: NotificationRequest, prefix: str = "") -> NotificationRequest:
    problems = wanted.unsupported_fields(datetime.now(UTC))
    if problems:
        raise ApiError(
            "VALIDATION_ERROR", "invalid notification", {prefix + k: v for k, v in problems.items()}
        )
    return wanted


def _as_pending(message: IntakeMessage) -> dict[str, Any]:
    """The notification as stored, for an answer given while PostgreSQL is unavailable."""
    now = datetime.now(UTC)
    body = message.model_dump(exclude={"v"})
    return {
        **body,
        "status": Status.PENDING,
        "status_reason": None,
        "created_at": now,
        "updated_at": now,
    }


async def _accept_one(caller: Caller, wanted: NotificationRequest) -> tuple[dict[str, Any], bool]:
    """Store and enqueue one notification: (notification, newly created)."""
    try:
        pool = await resources.db()
        wanted = await resolve(pool, caller.tenant_id, wanted)
    except Unresolvable as exc:
        raise ApiError("VALIDATION_ERROR", "invalid notification", exc.problems) from None
    except OUTAGES:
        if wanted.needs_lookup:
            raise
        pool = None
    message = IntakeMessage(id=uuid.uuid4(), tenant_id=caller.tenant_id, **dict(wanted))

    # Stored first, so that a GET right after the 202 finds it (read-your-writes); then
    # Kafka's acknowledgement, so that the 202 means durable. With PostgreSQL down, Kafka
    # alone makes it durable and the accept stage stores it once PostgreSQL is back.
    row = None
    if pool is not None:
        try:
            row, created = await _store(pool, message)
        except OUTAGES:
            pool = None
        else:
            if not created:
                if row["status"] == Status.PENDING.value:
                    # The request that made it timed out waiting for Kafka, which may or
                    # may not have it: sent again, the accept stage takes one copy.
                    try:
                        await _publish_all([notifications.as_intake_message(row)])
                    except Exception:
                        raise _unavailable() from None
                return notifications.as_api_dict(row), False
    try:
        await _publish_all([message])
    except Exception:
        logger.exception(
            "notification %s (tenant %s) refused: Kafka unavailable", message.id, caller.tenant_id
        )
        # Kafka may still take the message after the wait gave up. With an idempotency key
        # the row stays, so the client's retry finds it (and sends it again); without one
        # a retry is a new notification anyway, and the row would only mislead.
        if row is not None and not message.idempotency_key:
            await notifications.delete(pool, caller.tenant_id, message.id)
        raise _unavailable() from None
    return (notifications.as_api_dict(row) if row is not None else _as_pending(message)), True


async def _store(pool: asyncpg.Pool, message: IntakeMessage) -> tuple[asyncpg.Record, bool]:
    """Store a new notification, or find the one its idempotency key already stands for."""
    async with pool.acquire() as conn, conn.transaction():
        if message.idempotency_key:
            owner = await notifications.claim_idempotency_key(
                conn,
                message.tenant_id,
                message.idempotency_key,
                message.id,
                settings.idempotency_retention_hours * 3600,
            )
            if owner != message.id:
                existing = await notifications.get(conn, message.tenant_id, owner)
                if existing is None:
                    raise ApiError(
                        "CONFLICT",
                        "a request with this idempotency key is in progress; retry",
                        headers={"Retry-After": "1"},
                    )
                return existing, False
        row = await notifications.insert(conn, message, Status.PENDING)
        if row is None:
            raise ApiError("CONFLICT", "a notification with this id exists")
        return row, True


class BulkRecipient(Message):
    recipient_id: RecipientId
    recipient_address: ShortText | None = None
    payload: dict[str, Any] | None = None


class BulkRequest(Message):
    type: ShortText | None = None
    channel: Channel
    template_id: ShortText | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=5, ge=1, le=10)
    recipients: Annotated[list[BulkRecipient], Field(min_length=1, max_length=MAX_BULK_RECIPIENTS)]


async def _accept_bulk(caller: Caller, bulk: BulkRequest) -> tuple[list[dict], list[str]]:
    """Store and enqueue one notification per recipient; report each recipient's problem."""
    pool = await resources.db()
    errors: list[str] = []
    messages: list[IntakeMessage] = []
    base = bulk.model_dump(exclude={"recipients", "payload"})
    for recipient in bulk.recipients:
        fields = {
            **base,
            "recipient_id": recipient.recipient_id,
            "recipient_address": recipient.recipient_address,
            "payload": {**bulk.payload, **(recipient.payload or {})},
        }
        try:
            wanted = NotificationRequest.model_validate(fields)
            problems = wanted.unsupported_fields(datetime.now(UTC))
            if problems:
                raise Unresolvable(problems)
            wanted = await resolve(pool, caller.tenant_id, wanted)
        except ValidationError as exc:
            details = validation_details(exc)
            errors.append(
                f"recipient {recipient.recipient_id}: "
                + "; ".join(f"{k}: {v}" for k, v in details.items())
            )
            continue
        except Unresolvable as exc:
            errors.append(f"recipient {recipient.recipient_id}: {exc}")
            continue
        messages.append(IntakeMessage(id=uuid.uuid4(), tenant_id=caller.tenant_id, **dict(wanted)))

    rows: list[asyncpg.Record] = []
    if messages:
        async with pool.acquire() as conn, conn.transaction():
            for message in messages:
                rows.append(await notifications.insert(conn, message, Status.PENDING))
        try:
            await _publish_all(messages)
        except Exception:
            logger.exception(
                "bulk of %d (tenant %s) refused: Kafka unavailable", len(messages), caller.tenant_id
            )
            await pool.execute(
                "DELETE FROM notifications WHERE tenant_id = $1 AND id = ANY($2::uuid[])",
                caller.tenant_id,
                [m.id for m in messages],
            )
            raise _unavailable() from None
    return [notifications.as_api_dict(row) for row in rows], errors


_LIST_FILTERS = ("recipient_id", "channel", "status")


@app.page("/api/v1/notifications")
class NotificationsView(View):
    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        body = await read_json_object(request)
        if "idempotency_key" not in body and request.headers.get("Idempotency-Key"):
            body["idempotency_key"] = request.headers["Idempotency-Key"]
        wanted = _checked(parse_value(NotificationRequest, body, "notification"))
        notification, _ = await _accept_one(caller, wanted)
        return ok(request, notification, status=202)

    async def get(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        page = page_of(request)
        filters = {name: request.query.get(name) or None for name in _LIST_FILTERS}
        problems = {}
        if filters["channel"] and filters["channel"] not in set(Channel):
            problems["channel"] = f"one of {', '.join(Channel)}"
        if filters["status"] and filters["status"] not in set(Status):
            problems["status"] = f"one of {', '.join(Status)}"
        if problems:
            raise ApiError("VALIDATION_ERROR", "invalid filter", problems)
        rows, total = await notifications.page(
            await resources.db(), caller.tenant_id, filters, page.per_page, page.offset
        )
        return ok(request, [notifications.as_api_dict(r) for r in rows], **page.meta(total))


@app.page("/api/v1/notifications/bulk")
class BulkNotificationsView(View):
    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        bulk = await parse_body(request, BulkRequest, "bulk request")
        accepted, errors = await _accept_bulk(caller, bulk)
        return ok(request, {"accepted": accepted, "errors": errors}, status=202)


@app.page("/api/v1/notifications/{notification_id}")
class NotificationView(View):
    async def get(self, request: web.Request, notification_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        row = await notifications.get(
            await resources.db(), caller.tenant_id, parse_uuid(notification_id)
        )
        if row is None:
            raise ApiError("NOT_FOUND", "notification not found")
        return ok(request, notifications.as_api_dict(row))

    async def delete(self, request: web.Request, notification_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        row = await notifications.cancel(
            await resources.db(), caller.tenant_id, parse_uuid(notification_id)
        )
        if row is None:
            raise ApiError("NOT_FOUND", "notification not found or not cancellable")
        cancelled = Notification.model_validate(
            {k: row[k] for k in ("id", "tenant_id", "channel", "recipient_id")}
        )
        event = DeliveryEvent.about(cancelled, Status.CANCELLED, reason="cancelled by the tenant")
        await publish(delivery_events_topic, str(row["id"]).encode(), event.to_bytes())
        return ok(request, notifications.as_api_dict(row))
