"""``/api/v1/notifications``: send (one or in bulk), list, read and cancel notifications."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from faust.web import View
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from notifyhub.app import (
    app,
    publish_all,
    resources,
    settings,
    topics,
)
from notifyhub.db import notifications
from notifyhub.model import limits
from notifyhub.model.channels import Channel
from notifyhub.model.messages import (
    IntakeMessage,
    Message,
    NotificationRequest,
    Payload,
    RecipientId,
    ShortText,
)
from notifyhub.model.status import Status
from notifyhub.observability import tracing
from notifyhub.runtime.outages import OUTAGES
from notifyhub.services.acceptance import (
    RETRY_AFTER_SECONDS,
    Acceptance,
    KeyInProgress,
    Overloaded,
)
from notifyhub.services.cancellations import cancel
from notifyhub.services.publishing import QueueUnavailable
from notifyhub.services.quotas import TenantQuotas
from notifyhub.services.resolve import Unresolvable, resolve
from notifyhub.web.auth import Caller, authenticate_tenant
from notifyhub.web.inputs import page_of, parse_body, parse_uuid, parse_value
from notifyhub.web.responses import ApiError, ok, read_json_object, validation_details

logger = logging.getLogger(__name__)

MAX_BULK_RECIPIENTS = 1000

acceptance = Acceptance(resources, topics, publish_all)


def _unavailable() -> ApiError:
    return ApiError(
        "SERVICE_UNAVAILABLE", "the queue is unavailable; retry later", headers={"Retry-After": "5"}
    )


def _overloaded() -> ApiError:
    return ApiError(
        "SERVICE_UNAVAILABLE",
        "too many requests are waiting; retry later",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def _admitted() -> None:
    """Refuse at once, before the caller or the body is even read, when the worker is over
    capacity."""
    try:
        acceptance.check_load()
    except Overloaded:
        raise _overloaded() from None


def _checked(wanted: NotificationRequest, prefix: str = "") -> NotificationRequest:
    problems = wanted.unsupported_fields(datetime.now(UTC))
    if problems:
        raise ApiError(
            "VALIDATION_ERROR", "invalid notification", {prefix + k: v for k, v in problems.items()}
        )
    return wanted


_quotas: TenantQuotas | None = None


async def _within_quota(tenant_id: uuid.UUID, count: int) -> None:
    """429 when the tenant's notifications per second (``services.quotas``) are used up."""
    global _quotas
    if _quotas is None:
        _quotas = TenantQuotas(
            resources.redis(), settings.tenant_notifications_per_second, settings.rate_limit_fail_open
        )
    try:
        pool = await resources.db()
    except OUTAGES:
        pool = None
    decision = await _quotas.admit(pool, tenant_id, count)
    if not decision.allowed:
        raise ApiError(
            "RATE_LIMITED",
            f"over this tenant's quota of {decision.rate} notifications per second",
            headers={"Retry-After": str(decision.retry_after_seconds)},
        )


async def _accepted(request: web.Request, messages: list[IntakeMessage]) -> list[dict[str, Any]]:
    """Stored and in Kafka (``services.acceptance``), or the API error saying why not."""
    await _within_quota(messages[0].tenant_id, len(messages))
    try:
        return await acceptance.accept(messages, tracing.from_request(request.headers))
    except Overloaded:
        raise _overloaded() from None
    except QueueUnavailable:
        raise _unavailable() from None
    except KeyInProgress:
        raise ApiError(
            "CONFLICT",
            "a request with this idempotency key is in progress; retry",
            headers={"Retry-After": "1"},
        ) from None


async def _accept_one(
    request: web.Request, caller: Caller, wanted: NotificationRequest
) -> dict[str, Any]:
    """Store and enqueue one notification; the notification as answered."""
    try:
        pool = await resources.db()
        wanted = await resolve(pool, caller.tenant_id, wanted)
    except Unresolvable as exc:
        raise ApiError("VALIDATION_ERROR", "invalid notification", exc.problems) from None
    except OUTAGES:
        # Without PostgreSQL, only what needs no look-up can be accepted (through intake).
        if wanted.needs_lookup:
            raise
    message = IntakeMessage(id=uuid.uuid4(), tenant_id=caller.tenant_id, **dict(wanted))
    [notification] = await _accepted(request, [message])
    return notification


class BulkRecipient(Message):
    recipient_id: RecipientId
    recipient_address: ShortText | None = None
    payload: Payload | None = None


class BulkRequest(Message):
    type: ShortText | None = None
    channel: Channel
    template_id: ShortText | None = None
    payload: Payload = Field(default_factory=dict)
    priority: int = Field(default=5, ge=1, le=10)
    recipients: Annotated[list[BulkRecipient], Field(min_length=1, max_length=MAX_BULK_RECIPIENTS)]

    @field_validator("recipients")
    @classmethod
    def _bounded_in_total(
        cls, recipients: list[BulkRecipient], info: ValidationInfo
    ) -> list[BulkRecipient]:
        """The shared payload is copied once per recipient: a 1 MB body could otherwise
        become a gigabyte of rows and records."""
        shared = limits.payload_size(info.data.get("payload") or {})
        total = sum(shared + limits.payload_size(r.payload or {}) for r in recipients)
        if total > limits.MAX_BULK_PAYLOAD_SIZE:
            raise PydanticCustomError(
                "bulk_size",
                "the payloads, each merged with the shared one, are larger than {limit} MB in all",
                {"limit": limits.MAX_BULK_PAYLOAD_SIZE // (1024 * 1024)},
            )
        return recipients


async def _accept_bulk(
    request: web.Request, caller: Caller, bulk: BulkRequest
) -> tuple[list[dict[str, Any]], list[str]]:
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
    if not messages:
        return [], errors
    return await _accepted(request, messages), errors


_LIST_FILTERS = ("recipient_id", "channel", "status")


@app.page("/api/v1/notifications")
class NotificationsView(View):
    async def post(self, request: web.Request) -> web.Response:
        _admitted()
        caller = await authenticate_tenant(request)
        body = await read_json_object(request)
        if "idempotency_key" not in body and request.headers.get("Idempotency-Key"):
            body["idempotency_key"] = request.headers["Idempotency-Key"]
        wanted = _checked(parse_value(NotificationRequest, body, "notification"))
        return ok(request, await _accept_one(request, caller, wanted), status=202)

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
        _admitted()
        caller = await authenticate_tenant(request)
        bulk = await parse_body(request, BulkRequest, "bulk request")
        accepted, errors = await _accept_bulk(request, caller, bulk)
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
        row = await cancel(
            await resources.db(), publish_all, topics, caller.tenant_id, parse_uuid(notification_id)
        )
        if row is None:
            raise ApiError("NOT_FOUND", "notification not found or not cancellable")
        return ok(request, notifications.as_api_dict(row))


@app.page("/api/v1/notifications/{notification_id}/events")
class NotificationEventsView(View):
    async def get(self, request: web.Request, notification_id: str) -> web.Response:
        """The notification's delivery log, oldest first: its activity feed."""
        caller = await authenticate_tenant(request)
        page = page_of(request)
        found = await notifications.delivery_log_page(
            await resources.db(),
            caller.tenant_id,
            parse_uuid(notification_id),
            page.per_page,
            page.offset,
        )
        if found is None:
            raise ApiError("NOT_FOUND", "notification not found")
        rows, total = found
        return ok(request, [dict(row) for row in rows], **page.meta(total))
