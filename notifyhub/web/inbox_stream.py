"""The live inbox: ``POST /api/v1/ws-token`` and the WebSocket ``GET /api/v1/inbox/stream``.

The stream's token comes in ``?token=`` or an ``Authorization: Bearer`` header; a missing,
bad, expired, wrongly signed or ``alg: none`` token is a 401 before the upgrade. Frames:
``{"type":"history","data":msg}`` for what came after ``?since=<message id>`` (oldest
first, up to 200), then ``{"type":"message","data":msg}`` live, and ``{"type":"ping"}``
every ``NOTIFYHUB_WS_PING_SECONDS`` (25). The socket joins the live feed before history
is read, so nothing falls between the two; a message in both is sent once. When the
worker stops, every socket is closed with 1001 "going away" (``OpenSockets``): its client
reconnects, with ``since``, to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, cast

import redis.asyncio as redis
from aiohttp import WSCloseCode, WSMsgType, web
from faust.web import View
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from mode import Service
from pydantic_core import to_jsonable_python

from notifyhub.app import app, resources, settings
from notifyhub.db import inbox
from notifyhub.inbox import tokens as inbox_tokens
from notifyhub.inbox.realtime import InboxHub
from notifyhub.model.messages import Message, RecipientId
from notifyhub.observability.metrics import INAPP_WS_CONNECTIONS
from notifyhub.web.auth import authenticate_inbox_token, authenticate_tenant
from notifyhub.web.inputs import parse_body, parse_uuid
from notifyhub.web.responses import ApiError, ok

logger = logging.getLogger(__name__)

# NotifyHub's bound on the missed messages a reconnecting socket is sent.
MAX_HISTORY = 200
# Joining the live feed needs Redis; past this the request is a 503 rather than a hang.
JOIN_TIMEOUT_SECONDS = 5.0

_hub: InboxHub | None = None


def hub() -> InboxHub:
    """This worker's fan-out hub, on a Redis connection of its own: a subscription waits
    for messages indefinitely, which the shared client's 2 s socket timeout would cut."""
    global _hub
    if _hub is None:
        _hub = InboxHub(
            redis.Redis.from_url(settings.redis_url, health_check_interval=30), settings.topic_prefix
        )
    return _hub


GOING_AWAY_MESSAGE = b"worker stopping; reconnect with since"


class OpenSockets:
    """This worker's open inbox sockets, closed as "going away" when its web server stops.

    A socket's handler returns only once its socket is closed, and aiohttp's runner waits
    up to 60 s for every handler before the worker can stop: longer than the 30 s a
    deployment gives a worker after SIGTERM.
    """

    def __init__(self) -> None:
        self._sockets: set[web.WebSocketResponse] = set()
        self._stopping = False

    def admit(self, socket: web.WebSocketResponse) -> bool:
        """Track ``socket``; False once the worker is stopping (its caller closes it)."""
        if self._stopping:
            return False
        self._sockets.add(socket)
        return True

    def discard(self, socket: web.WebSocketResponse) -> None:
        self._sockets.discard(socket)

    async def close_all(self, _: web.Application) -> None:
        """aiohttp's ``on_shutdown``: runs after the server stopped accepting connections
        and before it waits for the handlers. The closes run together, each bounded by the
        socket's close timeout (10 s) for a client that never answers."""
        self._stopping = True
        await asyncio.gather(
            *(
                socket.close(code=WSCloseCode.GOING_AWAY, message=GOING_AWAY_MESSAGE)
                for socket in list(self._sockets)
            ),
            return_exceptions=True,
        )


open_sockets = OpenSockets()
cast(AiohttpWeb, app.web).web_app.on_shutdown.append(open_sockets.close_all)


@app.service
class InboxHubService(Service):
    """Stops the fan-out subscription when the worker stops."""

    async def on_stop(self) -> None:
        if _hub is not None:
            await _hub.close()


class WsTokenRequest(Message):
    recipient_id: RecipientId


@app.page("/api/v1/ws-token")
class WsTokenView(View):
    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, WsTokenRequest, "ws-token request")
        ttl = settings.ws_token_ttl_seconds
        token = inbox_tokens.issue(
            settings.ws_token_secret.get_secret_value(), caller.tenant_id, wanted.recipient_id, ttl
        )
        return ok(request, {"token": token, "expires_in": ttl})


def _token_of(request: web.Request) -> str:
    token = request.query.get("token", "")
    header = request.headers.get("Authorization", "")
    if not token and header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        raise ApiError("UNAUTHORIZED", "a token is required: ?token= or Authorization: Bearer")
    return token


@app.page("/api/v1/inbox/stream")
class InboxStreamView(View):
    async def get(self, request: web.Request) -> web.StreamResponse:
        grant = await authenticate_inbox_token(_token_of(request))
        raw_since = request.query.get("since")
        since = parse_uuid(raw_since, "since") if raw_since else None
        # Frames are small JSON: compression would cost CPU per socket for little.
        socket = web.WebSocketResponse(compress=False)
        if not socket.can_prepare(request).ok:
            raise ApiError(
                "VALIDATION_ERROR", "a WebSocket upgrade is required", {"Upgrade": "websocket"}
            )
        try:
            queue = await asyncio.wait_for(
                hub().join(grant.tenant_id, grant.recipient_id), JOIN_TIMEOUT_SECONDS
            )
        except TimeoutError:
            raise ApiError(
                "SERVICE_UNAVAILABLE",
                "live inbox unavailable; retry later",
                headers={"Retry-After": "5"},
            ) from None
        try:
            history: list[dict[str, Any]] = []
            if since is not None:
                rows = await inbox.since(
                    await resources.db(), grant.tenant_id, grant.recipient_id, since, MAX_HISTORY
                )
                if rows is None:
                    raise ApiError(
                        "VALIDATION_ERROR", "invalid since", {"since": "not a message of this inbox"}
                    )
                # As JSON now, like the live messages that come through Redis.
                history = [to_jsonable_python(inbox.message_json(row)) for row in rows]
            await socket.prepare(request)
            if not open_sockets.admit(socket):
                await socket.close(code=WSCloseCode.GOING_AWAY, message=GOING_AWAY_MESSAGE)
                return socket
            INAPP_WS_CONNECTIONS.inc()
            try:
                await _stream(socket, queue, history)
            except Exception:
                # After the upgrade an error can no longer be an HTTP answer: close the
                # socket as "internal error" (the client reconnects with since).
                logger.exception("inbox stream of %s failed", grant.recipient_id)
                await socket.close(code=WSCloseCode.INTERNAL_ERROR)
            finally:
                INAPP_WS_CONNECTIONS.dec()
                open_sockets.discard(socket)
        finally:
            hub().leave(grant.tenant_id, grant.recipient_id, queue)
        return socket


async def _stream(
    socket: web.WebSocketResponse, queue: asyncio.Queue[dict[str, Any]], history: list[dict[str, Any]]
) -> None:
    sent: set[str] = set()
    for message in history:
        await socket.send_json({"type": "history", "data": message})
        sent.add(str(message["id"]))

    async def forward() -> None:
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), settings.ws_ping_seconds)
            except TimeoutError:
                await socket.send_json({"type": "ping"})
                continue
            if str(message["id"]) not in sent:
                await socket.send_json({"type": "message", "data": message})

    sender = asyncio.create_task(forward())
    try:
        # Reading is how a close (or a dead client) is noticed; clients send nothing else.
        async for frame in socket:
            if frame.type == WSMsgType.ERROR:
                break
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await sender
