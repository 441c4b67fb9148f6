"""The live inbox over WebSockets, on a deployment of two workers: a message delivered by
one worker reaches sockets on both; reconnecting with ``since`` misses nothing; tokens
are checked before the upgrade; tenants never see each other's messages."""

from __future__ import annotations

import asyncio
import functools
import signal
import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import aiohttp
import asyncpg
import jwt
import pytest

from tests.support.api import Tenant, call, eventually, send_notification, wait_for_status
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

SECRET = f"ws-secret-{uuid.uuid4().hex}"
FRAME_TIMEOUT_SECONDS = 15.0


@pytest.fixture(scope="module")
def pair(worker_factory: Callable[..., Worker]) -> tuple[Worker, Worker]:
    """Two workers of one deployment, sending in-app messages through the inbox provider."""
    settings = {
        "NOTIFYHUB_SINK_CHANNELS": "email,sms,push",
        "NOTIFYHUB_WS_TOKEN_SECRET": SECRET,
        "NOTIFYHUB_WS_PING_SECONDS": "1",
    }
    deployment = f"inbox-{uuid.uuid4().hex[:8]}"
    return worker_factory(deployment, **settings), worker_factory(deployment, **settings)


async def ws_token(http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, recipient: str) -> str:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/ws-token",
        json={"recipient_id": recipient},
        headers=tenant.headers,
    )
    assert status == 200, body
    assert body["data"]["expires_in"] == 900
    return cast(str, body["data"]["token"])


async def next_frame(socket: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next frame of ``kind``, skipping pings."""
    async with asyncio.timeout(FRAME_TIMEOUT_SECONDS):
        while True:
            frame = await socket.receive_json()
            if frame["type"] == kind:
                return cast(dict[str, Any], frame)


async def test_a_message_reaches_sockets_on_both_workers(
    pair: tuple[Worker, Worker], tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    first, second = pair
    token = await ws_token(http, first, tenant, "live")
    sockets = [
        await http.ws_connect(f"{worker.base_url}/api/v1/inbox/stream?token={token}") for worker in pair
    ]
    try:
        await send_notification(
            http,
            first,
            tenant,
            channel="inapp",
            recipient_id="live",
            payload={"subject": "Hi", "body": "now"},
        )
        # Only the owner of the recipient's partition delivers it; both sockets get it.
        for socket in sockets:
            frame = await next_frame(socket, "message")
            assert (frame["data"]["title"], frame["data"]["body"]) == ("Hi", "now")
            assert frame["data"]["tenant_id"] == str(tenant.id)
    finally:
        for socket in sockets:
            await socket.close()
    del second


async def test_reconnecting_with_since_replays_what_was_missed_then_streams(
    pair: tuple[Worker, Worker], tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    worker = pair[1]
    token = await ws_token(http, worker, tenant, "away")
    url = f"{worker.base_url}/api/v1/inbox/stream"
    socket = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
    await send_notification(
        http, worker, tenant, channel="inapp", recipient_id="away", payload={"body": "1"}
    )
    seen = (await next_frame(socket, "message"))["data"]
    await socket.close()

    async def stored(count: int) -> bool:
        _, body = await call(
            http,
            "GET",
            f"{worker.base_url}/api/v1/inbox/unread-count",
            headers={**tenant.headers, "X-Recipient-ID": "away"},
        )
        return cast(bool, body["data"]["unread"] == count)

    # One after the other: two requests in flight may reach the inbox in either order
    # (they cross the accept stage on partitions of their own).
    for n in (2, 3):
        await send_notification(
            http, worker, tenant, channel="inapp", recipient_id="away", payload={"body": str(n)}
        )
        await eventually(functools.partial(stored, n), f"missed message {n} to be stored")
    socket = await http.ws_connect(f"{url}?token={token}&since={seen['id']}")
    try:
        missed = [await next_frame(socket, "history") for _ in range(2)]
        assert [m["data"]["body"] for m in missed] == ["2", "3"], "oldest first"
        await send_notification(
            http, worker, tenant, channel="inapp", recipient_id="away", payload={"body": "4"}
        )
        assert (await next_frame(socket, "message"))["data"]["body"] == "4"
        assert (await next_frame(socket, "ping")) == {"type": "ping"}
    finally:
        await socket.close()


async def test_a_socket_never_sees_another_tenants_messages(
    pair: tuple[Worker, Worker], tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    from notifyhub.db import tenants

    worker = pair[0]
    row = await tenants.create_tenant(database, f"other-{uuid.uuid4().hex[:6]}")
    _, other_key = await tenants.create_api_key(database, row["id"], "k")
    other = Tenant(row["id"], other_key)
    token = await ws_token(http, worker, tenant, "same-name")
    socket = await http.ws_connect(f"{worker.base_url}/api/v1/inbox/stream?token={token}")
    try:
        theirs = await send_notification(
            http, worker, other, channel="inapp", recipient_id="same-name", payload={"body": "not yours"}
        )
        # Stored in the other tenant's inbox (and so published) before ours is even sent.
        await wait_for_status(http, worker, other, theirs["id"], "delivered")
        await send_notification(
            http, worker, tenant, channel="inapp", recipient_id="same-name", payload={"body": "yours"}
        )
        assert (await next_frame(socket, "message"))["data"]["body"] == "yours"
    finally:
        await socket.close()


@pytest.mark.parametrize(
    "kind", ["missing", "garbage", "expired", "wrong secret", "alg none", "no recipient"]
)
async def test_a_bad_token_is_refused_before_the_upgrade(
    pair: tuple[Worker, Worker], tenant: Tenant, http: aiohttp.ClientSession, kind: str
) -> None:
    now = int(time.time())
    claims = {"tenant_id": str(tenant.id), "recipient_id": "r", "iat": now, "exp": now + 60}
    tokens = {
        "missing": "",
        "garbage": "not-a-jwt",
        "expired": jwt.encode({**claims, "iat": now - 120, "exp": now - 60}, SECRET, algorithm="HS256"),
        "wrong secret": jwt.encode(claims, "another-secret-entirely-32-bytes!", algorithm="HS256"),
        # PyJWT's annotation wants a key even for "none", which takes None.
        "alg none": jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        "no recipient": jwt.encode(
            {k: v for k, v in claims.items() if k != "recipient_id"}, SECRET, algorithm="HS256"
        ),
    }
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(f"{pair[0].base_url}/api/v1/inbox/stream?token={tokens[kind]}")
    assert refused.value.status == 401


# Every socket of a stopping worker is closed as "going away" and the worker exits well
# within the 30 s a deployment waits after SIGTERM.
SHUTDOWN_SOCKETS = 50
SHUTDOWN_WITHIN_SECONDS = 15.0


async def test_a_stopping_worker_closes_its_sockets_as_going_away_and_exits(
    worker_factory: Callable[..., Worker], tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    worker = worker_factory(NOTIFYHUB_WS_TOKEN_SECRET=SECRET)
    tokens = [await ws_token(http, worker, tenant, f"leaving-{n}") for n in range(SHUTDOWN_SOCKETS)]
    sockets = [
        await http.ws_connect(f"{worker.base_url}/api/v1/inbox/stream?token={token}") for token in tokens
    ]

    async def close_code(socket: aiohttp.ClientWebSocketResponse) -> int | None:
        while (await socket.receive()).type not in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
        ):
            pass
        return socket.close_code

    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(SHUTDOWN_WITHIN_SECONDS):
        codes = await asyncio.gather(*(close_code(socket) for socket in sockets))
        await asyncio.to_thread(worker.process.wait)
    assert codes == [aiohttp.WSCloseCode.GOING_AWAY] * SHUTDOWN_SOCKETS
    assert worker.process.returncode == 0, worker.log_tail()
    print(f"worker with {SHUTDOWN_SOCKETS} sockets stopped in {time.monotonic() - started:.1f}s")
