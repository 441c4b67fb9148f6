"""``/internal/dlq``: the dead-letter queue for operators (list, inspect, replay, delete).

Scoped by ``X-Tenant-ID`` like NotifyHub's; letters the pipeline could not tie to a tenant
(an intake message that was not even JSON) are under the nil UUID
``00000000-0000-0000-0000-000000000000``.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import asyncpg
from aiohttp import web
from faust.web import View

from notifyhub.app import app, resources, settings
from notifyhub.db import dead_letters
from notifyhub.model import limits
from notifyhub.model.channels import Channel
from notifyhub.observability.metrics import DLQ_REPLAYS
from notifyhub.web.auth import authenticate_admin
from notifyhub.web.inputs import bounded_int, parse_uuid
from notifyhub.web.responses import ApiError, ok

NIL_TENANT = uuid.UUID(int=0)
DEFAULT_LIMIT = 50
# NotifyHub's bound on one page.
MAX_LIMIT = 500
MAX_OFFSET = 10_000_000
# The pipeline's messages wrap a payload in at most two levels (hold → notification →
# payload); a message nested deeper is not one of them, and is shown as bytes only.
MAX_MESSAGE_DEPTH = limits.MAX_JSON_DEPTH + 2


def _tenant(request: web.Request) -> uuid.UUID | None:
    raw = request.headers.get("X-Tenant-ID")
    if not raw:
        raise ApiError(
            "VALIDATION_ERROR", "X-Tenant-ID is required", {"X-Tenant-ID": "a tenant id is required"}
        )
    tenant = parse_uuid(raw, "X-Tenant-ID")
    return None if tenant == NIL_TENANT else tenant


def _message(raw: bytes) -> Any:
    """The message as JSON, when it is JSON that any client can read back: within the
    limits on depth and numbers (no NaN, no integer beyond 64 bits), its text storable."""
    try:
        message = limits.loads(raw)
    except limits.Unacceptable:
        return None
    problem = limits.json_problem(message, "message", max_depth=MAX_MESSAGE_DEPTH, max_size=None)
    return message if problem is None else None


def _as_json(letter: asyncpg.Record) -> dict[str, Any]:
    raw: bytes = letter["message"]
    key: bytes | None = letter["message_key"]
    try:
        message_key = key.decode() if key is not None else None
    except UnicodeDecodeError:
        message_key = None
    return {
        "id": letter["id"],
        "tenant_id": letter["tenant_id"] or NIL_TENANT,
        "source_topic": letter["source_topic"],
        "channel": letter["channel"],
        "notification_id": letter["notification_id"],
        "reason": letter["reason"],
        "attempts": letter["attempts"],
        "message_key": message_key,
        # The message as JSON when it is JSON within bounds; its exact bytes always.
        "message": _message(raw),
        "message_base64": base64.b64encode(raw).decode(),
        "created_at": letter["created_at"],
        "replayed_at": letter["replayed_at"],
    }


async def _publish(topic: str, key: bytes | None, message: bytes) -> None:
    # Only the pipeline's own topics: a letter's source topic comes from the pipeline, but
    # the check keeps a replay from ever writing elsewhere.
    if not topic.startswith(f"{settings.topic_prefix}."):
        raise ApiError("VALIDATION_ERROR", "the letter's source topic is not NotifyHub's")
    await app.producer.send_and_wait(topic, key, message, partition=None, timestamp=None, headers=None)


@app.page("/internal/dlq")
class DeadLettersView(View):
    async def get(self, request: web.Request) -> web.Response:
        authenticate_admin(request)
        tenant = _tenant(request)
        channel = request.query.get("channel") or None
        if channel is not None and channel not in {c.value for c in Channel}:
            raise ApiError(
                "VALIDATION_ERROR", "invalid channel", {"channel": f"one of {', '.join(Channel)}"}
            )
        unreplayed = request.query.get("unreplayed", "").lower() in ("true", "1")
        limit = bounded_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = bounded_int(request, "offset", 0, 0, MAX_OFFSET)
        rows, total = await dead_letters.page(
            await resources.db(),
            tenant,
            channel=channel,
            unreplayed=unreplayed,
            limit=limit,
            offset=offset,
        )
        return ok(request, [_as_json(r) for r in rows], limit=limit, offset=offset, total=total)


@app.page("/internal/dlq/{letter_id}")
class DeadLetterView(View):
    async def get(self, request: web.Request, letter_id: str) -> web.Response:
        authenticate_admin(request)
        letter = await dead_letters.get(
            await resources.db(), _tenant(request), parse_uuid(letter_id, "id")
        )
        if letter is None:
            raise ApiError("NOT_FOUND", "dead letter not found")
        return ok(request, _as_json(letter))

    async def delete(self, request: web.Request, letter_id: str) -> web.Response:
        authenticate_admin(request)
        deleted = await dead_letters.delete(
            await resources.db(), _tenant(request), parse_uuid(letter_id, "id")
        )
        if not deleted:
            raise ApiError("NOT_FOUND", "dead letter not found")
        return web.Response(status=204)


@app.page("/internal/dlq/{letter_id}/replay")
class DeadLetterReplayView(View):
    async def post(self, request: web.Request, letter_id: str) -> web.Response:
        authenticate_admin(request)
        try:
            letter = await dead_letters.replay(
                await resources.db(), _tenant(request), parse_uuid(letter_id, "id"), _publish
            )
        except dead_letters.AlreadyReplayed:
            raise ApiError("CONFLICT", "dead letter already replayed") from None
        if letter is None:
            raise ApiError("NOT_FOUND", "dead letter not found")
        DLQ_REPLAYS.labels(channel=letter["channel"] or "").inc()
        return ok(request, {"status": "replayed", "dead_letter": _as_json(letter)})
