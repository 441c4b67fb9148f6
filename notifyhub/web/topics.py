"""``/api/v1/topics``: named lists of recipients, and notifications sent to all of them.

A send to a topic is answered once it is recorded and its first fan-out step is in Kafka;
the fan-out stage (``agents/topics.py``) then walks the subscribers in chunks, so a send to
a million recipients costs the request one row and one record.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from aiohttp import web
from faust.web import View
from pydantic import Field, StringConstraints

from notifyhub.app import app, publish_all, resources, topics
from notifyhub.db import templates
from notifyhub.db import topics as topic_rows
from notifyhub.model.channels import Channel
from notifyhub.model.messages import (
    DEFAULT_PRIORITY,
    LEAST_URGENT,
    MOST_URGENT,
    Locale,
    Message,
    NotificationRequest,
    Payload,
    RecipientId,
    ShortText,
)
from notifyhub.services.publishing import QueueUnavailable
from notifyhub.services.topic_sends import start_send
from notifyhub.web.auth import authenticate_tenant
from notifyhub.web.inputs import page_of, parse_body, parse_uuid, parse_value
from notifyhub.web.responses import ApiError, ok

# A tenant's topics are listed and counted whole; a cap keeps that cheap.
MAX_TOPICS_PER_TENANT = 1000
# A send walks every subscriber; a cap bounds one send's work (a million notifications).
MAX_SUBSCRIBERS_PER_TOPIC = 1_000_000
# Recipients per subscribe or unsubscribe call: one statement each, like a bulk send.
MAX_RECIPIENTS_PER_CALL = 1000

# Keys are path segments: a small alphabet keeps them unambiguous in a URL.
TOPIC_KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
TopicKey = Annotated[str, StringConstraints(pattern=TOPIC_KEY_PATTERN)]


class TopicCreate(Message):
    key: TopicKey
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class Subscribers(Message):
    recipient_ids: Annotated[list[RecipientId], Field(min_length=1, max_length=MAX_RECIPIENTS_PER_CALL)]


class TopicSendRequest(Message):
    """A notification for every subscriber: a bulk send whose recipients are the topic's."""

    type: ShortText | None = None
    channel: Channel
    template_id: ShortText | None = None
    payload: Payload = Field(default_factory=dict)
    priority: int = Field(default=DEFAULT_PRIORITY, ge=MOST_URGENT, le=LEAST_URGENT)
    locale: Locale | None = None


def _topic_not_found() -> ApiError:
    return ApiError("NOT_FOUND", "topic not found")


def _send_as_api_dict(row: asyncpg.Record, key: str) -> dict[str, Any]:
    send = {
        name: row[name]
        for name in (
            "id",
            "type",
            "channel",
            "template_id",
            "priority",
            "locale",
            "subscriber_count",
            "status",
            "stored",
            "skipped",
            "created_at",
            "finished_at",
        )
    }
    return {**send, "topic_key": key, "payload": topic_rows.decoded_payload(row)}


async def _checked_send(tenant_id: uuid.UUID, key: str, wanted: TopicSendRequest) -> dict[str, Any]:
    """The send's fields, its template named by id; a 422 naming what is wrong.

    Checked as one notification to one recipient would be: the payload's texts, the template.
    """
    fields = wanted.model_dump()
    request = parse_value(NotificationRequest, {**fields, "recipient_id": key}, "notification")
    problems = request.unsupported_fields(datetime.now(UTC))
    if problems:
        raise ApiError("VALIDATION_ERROR", "invalid notification", problems)
    if wanted.template_id is not None:
        template = await templates.find(
            await resources.db(), tenant_id, wanted.channel, wanted.template_id
        )
        if template is None:
            raise ApiError(
                "VALIDATION_ERROR",
                "invalid notification",
                {"template_id": f"no active {wanted.channel} template has this id or name"},
            )
        fields["template_id"] = str(template["id"])
    return fields


@app.page("/api/v1/topics")
class TopicsView(View):
    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, TopicCreate, "topic")
        try:
            row = await topic_rows.create_capped(
                await resources.db(), caller.tenant_id, wanted.key, wanted.name, MAX_TOPICS_PER_TENANT
            )
        except topic_rows.TooManyTopics as exc:
            raise ApiError("CONFLICT", f"{exc}; delete topics you no longer use") from None
        if row is None:
            raise ApiError("CONFLICT", f"a topic with the key {wanted.key!r} exists")
        return ok(request, topic_rows.as_api_dict(row), status=201)

    async def get(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        page = page_of(request)
        rows, total = await topic_rows.page(
            await resources.db(), caller.tenant_id, page.per_page, page.offset
        )
        return ok(request, [topic_rows.as_api_dict(r) for r in rows], **page.meta(total))


@app.page("/api/v1/topics/{key}")
class TopicView(View):
    async def get(self, request: web.Request, key: str) -> web.Response:
        caller = await authenticate_tenant(request)
        row = await topic_rows.get(await resources.db(), caller.tenant_id, key)
        if row is None:
            raise _topic_not_found()
        return ok(request, topic_rows.as_api_dict(row))

    async def delete(self, request: web.Request, key: str) -> web.Response:
        caller = await authenticate_tenant(request)
        row = await topic_rows.delete(await resources.db(), caller.tenant_id, key)
        if row is None:
            raise _topic_not_found()
        return ok(request, topic_rows.as_api_dict(row))


@app.page("/api/v1/topics/{key}/subscribers")
class TopicSubscribersView(View):
    async def post(self, request: web.Request, key: str) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, Subscribers, "subscribers")
        try:
            row = await topic_rows.subscribe(
                await resources.db(),
                caller.tenant_id,
                key,
                wanted.recipient_ids,
                MAX_SUBSCRIBERS_PER_TOPIC,
            )
        except topic_rows.TooManySubscribers as exc:
            raise ApiError("CONFLICT", f"{exc}; unsubscribe some first") from None
        if row is None:
            raise _topic_not_found()
        return ok(request, topic_rows.as_api_dict(row))

    async def delete(self, request: web.Request, key: str) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, Subscribers, "subscribers")
        row = await topic_rows.unsubscribe(
            await resources.db(), caller.tenant_id, key, wanted.recipient_ids
        )
        if row is None:
            raise _topic_not_found()
        return ok(request, topic_rows.as_api_dict(row))

    async def get(self, request: web.Request, key: str) -> web.Response:
        caller = await authenticate_tenant(request)
        page = page_of(request)
        found = await topic_rows.subscribers_page(
            await resources.db(), caller.tenant_id, key, page.per_page, page.offset
        )
        if found is None:
            raise _topic_not_found()
        rows, total = found
        return ok(request, [dict(r) for r in rows], **page.meta(total))


@app.page("/api/v1/topics/{key}/notifications")
class TopicNotificationsView(View):
    async def post(self, request: web.Request, key: str) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, TopicSendRequest, "notification")
        fields = await _checked_send(caller.tenant_id, key, wanted)
        try:
            row = await start_send(
                await resources.db(), publish_all, topics, caller.tenant_id, key, fields
            )
        except QueueUnavailable:
            raise ApiError(
                "SERVICE_UNAVAILABLE",
                "the queue is unavailable; retry later",
                headers={"Retry-After": "5"},
            ) from None
        if row is None:
            raise _topic_not_found()
        return ok(request, _send_as_api_dict(row, key), status=202)


@app.page("/api/v1/topics/{key}/sends/{send_id}")
class TopicSendView(View):
    async def get(self, request: web.Request, key: str, send_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        row = await topic_rows.get_send(
            await resources.db(), caller.tenant_id, key, parse_uuid(send_id, "send_id")
        )
        if row is None:
            raise ApiError("NOT_FOUND", "topic send not found")
        return ok(request, _send_as_api_dict(row, key))
