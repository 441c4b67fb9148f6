"""SMS through Twilio's Messages API, with the official SDK's asyncio HTTP client.

``twilio`` sends through ``AsyncTwilioHttpClient`` (aiohttp), so a send never blocks
the event loop. The client is made on the first send, inside the worker's event loop
(aiohttp sessions belong to the loop that made them), and closed with the provider.

Twilio's Messages API has no idempotency key for creating a message: a redelivery after
a crash between Twilio's answer and our record of it would send again. The send stage's
claim keeps that window to that one crash.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError, ProviderError, SendResult
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings

TWILIO_API_URL = "https://api.twilio.com"
# Where Twilio's status callbacks are received, under NOTIFYHUB_PUBLIC_URL.
TWILIO_STATUS_PATH = "/receipts/twilio/status"
# Error codes for which retrying the same message can never succeed
# (NotifyHub's list: invalid or unreachable number, unsubscribed, not a mobile number,
# authentication, missing body, unverified trial number, bad callback URL).
PERMANENT_CODES = frozenset({21211, 21610, 21614, 20003, 21401, 21602, 21608, 21609})
# "Attempt to send to unsubscribed recipient": the number texted STOP to our sender.
OPTED_OUT_CODE = 21610


# twilio ships no type information, so its classes are Any to mypy.
class _TwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The SDK's client, with its credentials in a header and, optionally, another base
    URL than api.twilio.com.

    The SDK hands the account SID and token to aiohttp as ``BasicAuth``, which aiohttp
    3.14 deprecates (two warnings per request); the same Basic credentials (RFC 7617)
    go in the ``Authorization`` header instead. The SDK hard-codes its hosts
    (``ApiBase``); a local server speaking the Messages API (tests, benchmarks) or a
    regional proxy needs the scheme and host swapped.
    """

    def __init__(self, timeout: float, base_url: str = TWILIO_API_URL) -> None:
        super().__init__(timeout=timeout)
        # None: the SDK's own hosts.
        self._base = urlsplit(base_url) if base_url != TWILIO_API_URL else None

    async def request(
        self,
        method: str,
        url: str,
        *args: Any,
        auth: tuple[str, str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Response:
        if self._base is not None:
            _, _, path, query, fragment = urlsplit(url)
            url = urlunsplit((self._base.scheme, self._base.netloc, path, query, fragment))
        headers = dict(headers or {})
        if auth is not None:
            headers["Authorization"] = basic_authorization(*auth)
        return await super().request(method, url, *args, headers=headers, **kwargs)


def basic_authorization(login: str, password: str) -> str:
    """The ``Authorization`` header value for HTTP Basic credentials."""
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode("ascii")


class TwilioProvider:
    name = "twilio"
    channel = Channel.SMS

    def __init__(self, settings: Settings) -> None:
        self._account_sid = settings.twilio_account_sid or ""
        self._auth_token = (
            settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
        )
        self._sender: dict[str, str] = (
            {"messaging_service_sid": settings.twilio_messaging_service_sid}
            if settings.twilio_messaging_service_sid
            else {"from_": settings.twilio_from or ""}
        )
        self._api_url = settings.twilio_api_url.rstrip("/")
        # Twilio reports each message's fate there (``web/receipts.py``).
        self._callback: dict[str, str] = (
            {"status_callback": settings.public_url.rstrip("/") + TWILIO_STATUS_PATH}
            if settings.public_url
            else {}
        )
        self._timeout = settings.provider_timeout_seconds
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def _twilio(self) -> Client:
        async with self._lock:
            if self._client is None:
                http = _TwilioHttpClient(self._timeout, self._api_url)
                self._client = Client(self._account_sid, self._auth_token, http_client=http)
            return self._client

    async def send(self, notification: Notification) -> SendResult:
        client = await self._twilio()
        message = await client.messages.create_async(
            to=notification.recipient_address or "",
            body=notification.body or "",
            **self._sender,
            **self._callback,
        )
        return SendResult(provider_message_id=message.sid or "")

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, TwilioRestException | TwilioServiceException):
            code = error.code
            status = error.status
            message = getattr(error, "msg", None) or getattr(error, "title", "") or str(error)
            text = f"HTTP {status}, error {code}: {message}"
            temporary = status == 429 or status >= 500
            if code in PERMANENT_CODES:
                temporary = False
            return ProviderError(
                text,
                temporary=temporary,
                code=str(code) if code is not None else None,
                opted_out=code == OPTED_OUT_CODE,
            )
        if isinstance(error, aiohttp.ClientError | TimeoutError | OSError):
            return ProviderError(f"Twilio unreachable: {error!r}", temporary=True)
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.http_client.close()
            self._client = None


def create(channel: Channel, settings: Settings, resources: Resources) -> TwilioProvider:
    missing = [
        name
        for name, value in (
            ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
        )
        if not value
    ]
    if not (settings.twilio_from or settings.twilio_messaging_service_sid):
        missing.append("NOTIFYHUB_TWILIO_FROM or NOTIFYHUB_TWILIO_MESSAGING_SERVICE_SID")
    if missing:
        raise ProviderConfigError(f"the twilio provider needs {', '.join(missing)}")
    return TwilioProvider(settings)
