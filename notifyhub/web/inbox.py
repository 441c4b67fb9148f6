"""``/api/v1/inbox``: a recipient's in-app messages, for the tenant's backend or its app.

Every route takes ``X-API-Key`` and ``X-Recipient-ID`` (missing → 422), as NotifyHub's,
or, from a browser, the recipient's inbox token (``Authorization: Bearer``).
Beyond NotifyHub, as Novu, Knock and Courier users expect, a message has three states,
each a timestamp set the first time: ``read``, ``seen`` (shown in a feed, not opened)
and ``archived`` (out of the default feed and the unread/unseen counts).
"""

from __future__ import annotations

import uuid

from aiohttp import web
from faust.web import View

from notifyhub.app import app, publish_all, resources, topics
from notifyhub.db import inbox
from notifyhub.services.escalations import stop_escalations
from notifyhub.web.auth import authenticate_inbox_token, authenticate_tenant
from notifyhub.web.inputs import bounded_int, int_or_default, parse_uuid
from notifyhub.web.responses import ApiError, ok

DEFAULT_LIMIT = 50
# NotifyHub's bound on one page of the inbox; a limit outside 1..200 is the default.
MAX_LIMIT = 200
MAX_OFFSET = 1_000_000
MAX_RECIPIENT_ID_LENGTH = 255
# Per-message actions: the state and whether the action sets or clears it.
ACTIONS = {
    "read": ("read", True),
    "unread": ("read", False),
    "seen": ("seen", True),
    "archive": ("archived", True),
    "unarchive": ("archived", False),
}


async def _recipient(request: web.Request) -> tuple[uuid.UUID, str]:
    """Whose inbox: the tenant's API key with ``X-Recipient-ID`` (a backend), or the
    recipient's own inbox token in ``Authorization: Bearer`` (a browser, which must
    never hold the API key; the token names tenant and recipient)."""
    authorization = request.headers.get("Authorization", "")
    if "X-API-Key" not in request.headers and authorization.lower().startswith("bearer "):
        grant = await authenticate_inbox_token(authorization[7:].strip())
        return grant.tenant_id, grant.recipient_id
    caller = await authenticate_tenant(request)
    recipient = request.headers.get("X-Recipient-ID", "").strip()
    if not recipient or len(recipient) > MAX_RECIPIENT_ID_LENGTH:
        raise ApiError(
            "VALIDATION_ERROR",
            "X-Recipient-ID is required",
            {"X-Recipient-ID": f"the recipient's id, 1 to {MAX_RECIPIENT_ID_LENGTH} characters"},
        )
    return caller.tenant_id, recipient


def _flag(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise ApiError("VALIDATION_ERROR", f"invalid {name}", {name: "true or false"})


@app.page("/api/v1/inbox")
class InboxView(View):
    async def get(self, request: web.Request) -> web.Response:
        tenant_id, recipient = await _recipient(request)
        archived = request.query.get("archived", "false")
        filters = inbox.InboxFilter(
            unread=True if _flag(request, "unread") else None,
            unseen=True if _flag(request, "unseen") else None,
            # "all" lists archived messages too; by default they are out of the feed.
            archived=None if archived == "all" else bool(_flag(request, "archived")),
        )
        limit = int_or_default(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = bounded_int(request, "offset", 0, 0, MAX_OFFSET)
        raw_after = request.query.get("after_id")
        after_id = parse_uuid(raw_after, "after_id") if raw_after else None
        if after_id is not None and offset:
            raise ApiError(
                "VALIDATION_ERROR",
                "after_id and offset exclude each other",
                {"offset": "not with after_id"},
            )
        rows = await inbox.page(
            await resources.db(),
            tenant_id,
            recipient,
            filters,
            limit=limit,
            after_id=after_id,
            offset=offset,
        )
        if rows is None:
            raise ApiError(
                "VALIDATION_ERROR", "invalid after_id", {"after_id": "not a message of this inbox"}
            )
        return ok(request, [inbox.message_json(row) for row in rows], limit=limit)


@app.page("/api/v1/inbox/unread-count")
class UnreadCountView(View):
    async def get(self, request: web.Request) -> web.Response:
        tenant_id, recipient = await _recipient(request)
        counts = await inbox.counts(await resources.db(), tenant_id, recipient)
        return ok(request, {"unread": counts["unread"]})


@app.page("/api/v1/inbox/counts")
class CountsView(View):
    async def get(self, request: web.Request) -> web.Response:
        tenant_id, recipient = await _recipient(request)
        return ok(request, await inbox.counts(await resources.db(), tenant_id, recipient))


@app.page("/api/v1/inbox/read-all")
class ReadAllView(View):
    async def post(self, request: web.Request) -> web.Response:
        tenant_id, recipient = await _recipient(request)
        marked = await inbox.mark(await resources.db(), tenant_id, recipient, "read", None)
        await stop_escalations(publish_all, topics, tenant_id, recipient, marked)
        return web.Response(status=204)


@app.page("/api/v1/inbox/seen-all")
class SeenAllView(View):
    async def post(self, request: web.Request) -> web.Response:
        tenant_id, recipient = await _recipient(request)
        marked = await inbox.mark(await resources.db(), tenant_id, recipient, "seen", None)
        await stop_escalations(publish_all, topics, tenant_id, recipient, marked)
        return web.Response(status=204)


@app.page("/api/v1/inbox/{message_id}/{action}")
class MessageActionView(View):
    async def post(self, request: web.Request, message_id: str, action: str) -> web.Response:
        tenant_id, recipient = await _recipient(request)
        if action not in ACTIONS:
            raise ApiError("NOT_FOUND", f"no inbox action {action!r}; one of {', '.join(ACTIONS)}")
        state, on = ACTIONS[action]
        marked = await inbox.mark(
            await resources.db(), tenant_id, recipient, state, parse_uuid(message_id, "id"), on=on
        )
        if not marked.matched:
            raise ApiError("NOT_FOUND", "message not found")
        if on and state in ("read", "seen"):
            await stop_escalations(publish_all, topics, tenant_id, recipient, marked)
        return web.Response(status=204)
