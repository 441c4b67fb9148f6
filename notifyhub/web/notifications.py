"""``/api/v1/notifications``: accept a notification, and read its status back."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

import asyncpg
from aiohttp import web
from faust.web import View
from pydantic import ValidationError

from notifyhub.app import app, intake_topic, publish, resources
from notifyhub.db import notifications
from notifyhub.messages import IntakeMessage, NotificationRequest
from notifyhub.status import Status
from notifyhub.web.auth import authenticate_tenant
from notifyhub.web.responses import ApiError, ok, read_json_object, validation_details

logger = logging.getLogger(__name__)

# How long a 202 may wait for Kafka to acknowledge the message before the request
# answers 503 instead; the client can retry with the same idempotency key.
PUBLISH_TIMEOUT_SECONDS = 10.0


def intake_key(message: IntakeMessage) -> bytes:
    """Intake is keyed so that one tenant's idempotency key always lands in one partition."""
    return f"{message.tenant_id}:{message.idempotency_key or message.id}".encode()


def _parse_request(request: web.Request, body: dict) -> NotificationRequest:
    if "idempotency_key" not in body and request.headers.get("Idempotency-Key"):
        body["idempotency_key"] = request.headers["Idempotency-Key"]
    try:
        wanted = NotificationRequest.model_validate(body)
    except ValidationError as exc:
        raise ApiError("VALIDATION_ERROR", "invalid notification", validation_details(exc)) from None
    problems = wanted.unsupported_fields(datetime.now(UTC))
    if problems:
        raise ApiError("VALIDATION_ERROR", "invalid notification", problems)
    return wanted


def _parse_id(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError("VALIDATION_ERROR", "invalid notification id", {"id": "not a UUID"}) from None


@app.page("/api/v1/notifications")
class NotificationsView(View):
    async def post(self, request: web.Request) -> web.Response:
        pool = await resources.db()
        tenant_id = await authenticate_tenant(request, pool)
        wanted = _parse_request(request, await read_json_object(request))
        message = IntakeMessage(id=uuid.uuid4(), tenant_id=tenant_id, **dict(wanted))

        # Persist first so that a GET right after the 202 finds it (read-your-writes),
        # then wait for Kafka's acknowledgement so that the 202 means "durable".
        row = await notifications.insert(pool, message, Status.PENDING)
        if row is None and message.idempotency_key:
            existing = await notifications.get_by_idempotency_key(
                pool, tenant_id, message.idempotency_key
            )
            if existing is not None:
                return ok(request, notifications.as_api_dict(existing), status=202)
        if row is None:
            raise ApiError("CONFLICT", "a notification with this id exists")
        try:
            await asyncio.wait_for(
                publish(intake_topic, intake_key(message), message.to_bytes()),
                PUBLISH_TIMEOUT_SECONDS,
            )
        except Exception:
            logger.exception(
                "notification %s for tenant %s not accepted: Kafka unavailable",
                message.id,
                tenant_id,
            )
            await notifications.delete(pool, tenant_id, message.id)
            raise ApiError(
                "SERVICE_UNAVAILABLE",
                "the queue is unavailable; retry later",
                None,
                {"Retry-After": "5"},
            ) from None
        return ok(request, notifications.as_api_dict(row), status=202)


@app.page("/api/v1/notifications/{notification_id}")
class NotificationView(View):
    async def get(self, request: web.Request, notification_id: str) -> web.Response:
        pool = await resources.db()
        tenant_id = await authenticate_tenant(request, pool)
        row: asyncpg.Record | None = await notifications.get(pool, tenant_id, _parse_id(notification_id))
        if row is None:
            raise ApiError("NOT_FOUND", "notification not found")
        return ok(request, notifications.as_api_dict(row))
