"""A local server speaking Twilio's Messages API, for tests and benchmarks.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded, HTTP Basic auth
with the account SID and auth token; a 201 with a Message resource, or an error in
Twilio's JSON shape ``{"code", "message", "more_info", "status"}``. ``To`` follows
Twilio's documented magic test numbers (+15005550001 invalid → 21211, …), and the test
controls ``fail_next`` and ``set_down`` script temporary failures.

Standalone (benchmarks): ``python -m tests.support.servers.twilio [--port N]`` prints the
environment that points a worker at it, one ``NAME=value`` per line, then serves.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from tests.support.servers import announce, serve

MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"
FROM_NUMBER = "+15005550006"

# Twilio's magic "To" numbers for test credentials: (HTTP status, error code, message).
MAGIC_TO = {
    "+15005550001": (400, 21211, "The 'To' number +15005550001 is not a valid phone number."),
    "+15005550002": (400, 21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (400, 21408, "Permission to send an SMS has not been enabled for the region."),
    "+15005550004": (400, 21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (400, 21614, "'To' number is not a valid mobile number"),
}
TEMPORARY_CODES = {429: 20429, 500: 20500, 503: 20503}


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


class FakeTwilio:
    def __init__(self, port: int = 0) -> None:
        self.account_sid = "AC" + secrets.token_hex(16)
        self.auth_token = secrets.token_hex(16)
        self.messages: list[dict[str, Any]] = []
        # The numbers of the sends refused by a magic number, in order.
        self.refused_to: list[str] = []
        self.requests = 0
        self._port = port
        self._failures: list[int] = []
        self._down = False
        self._runner: web.AppRunner | None = None
        self.url = ""

    def fail_next(self, count: int, status: int = 503) -> None:
        """The next ``count`` requests answer ``status`` (429 or 5xx) with a Twilio error."""
        self._failures.extend([status] * count)

    def set_down(self, down: bool) -> None:
        """While down, every request answers 503."""
        self._down = down

    def env(self) -> dict[str, str]:
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "NOTIFYHUB_TWILIO_FROM": FROM_NUMBER,
            "NOTIFYHUB_TWILIO_API_URL": self.url,
        }

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(MESSAGES_PATH, self._create_message)
        self._runner, self.url = await serve(app, self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _authorized(self, request: web.Request, account_sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (
            secrets.compare_digest(user, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
            and account_sid == self.account_sid
        )

    async def _create_message(self, request: web.Request) -> web.Response:
        self.requests += 1
        received_at = time.time()
        if self._down:
            return _error(503, 20503, "Service Unavailable")
        if self._failures:
            status = self._failures.pop(0)
            return _error(status, TEMPORARY_CODES.get(status, 20500), "Scripted failure")
        if not self._authorized(request, request.match_info["account_sid"]):
            return _error(401, 20003, "Authenticate")
        form = await request.post()
        to = str(form.get("To", ""))
        sender = form.get("From") or form.get("MessagingServiceSid")
        body = str(form.get("Body", ""))
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not sender:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if to in MAGIC_TO:
            self.refused_to.append(to)
            return _error(*MAGIC_TO[to])
        now = format_datetime(datetime.now(UTC), usegmt=True)
        message = {
            "sid": "SM" + secrets.token_hex(16),
            "account_sid": self.account_sid,
            "to": to,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": body,
            "status": "queued",
            "num_segments": "1",
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "price": None,
            "error_code": None,
            "error_message": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages.json",
        }
        recorded = {**message, "status_callback": form.get("StatusCallback"), "received_at": received_at}
        self.messages.append(recorded)
        return web.json_response(message, status=201)


async def _serve(port: int) -> None:
    server = FakeTwilio(port)
    await server.start()
    announce(server.env())
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(_serve(parser.parse_args().port))
