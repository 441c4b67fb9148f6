"""Twilio's side of delivery receipts, for tests: an SMS sent through the fake Twilio, and
its status callbacks signed the way Twilio signs them, for a worker whose public URL is
``PUBLIC_URL`` (the signature covers it) while the requests go to it on loopback."""

from __future__ import annotations

import uuid

import aiohttp

from tests.support.api import Tenant, send_notification, wait_for_status
from tests.support.servers.twilio import FakeTwilio
from tests.support.signing import twilio_signature
from tests.support.workers import Worker

PUBLIC_URL = "https://notify.example.test"
NUMBER = "+15005550006"
TWILIO_STATUS_PATH = "/receipts/twilio/status"


async def sent_sms(
    http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, twilio: FakeTwilio
) -> tuple[str, str]:
    """An SMS sent through Twilio: its notification id and Twilio's message SID."""
    body = f"receipt {uuid.uuid4().hex[:8]}"
    sent = await send_notification(
        http,
        worker,
        tenant,
        channel="sms",
        recipient_id="r",
        recipient_address=NUMBER,
        payload={"body": body},
    )
    await wait_for_status(http, worker, tenant, sent["id"], "sent")
    [message] = [m for m in twilio.messages if m["body"] == body]
    assert message["status_callback"] == f"{PUBLIC_URL}/receipts/twilio/status"
    return sent["id"], message["sid"]


async def twilio_callback(
    http: aiohttp.ClientSession,
    worker: Worker,
    twilio: FakeTwilio,
    path: str,
    fields: dict[str, str],
    token: str | None = None,
) -> int:
    signature = twilio_signature(token or twilio.auth_token, f"{PUBLIC_URL}{path}", fields)
    async with http.post(
        f"{worker.base_url}{path}", data=fields, headers={"X-Twilio-Signature": signature}
    ) as response:
        return response.status


def status_fields(sid: str, status: str, **more: str) -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": status, "AccountSid": "AC1", "To": NUMBER, **more}
