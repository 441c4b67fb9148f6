"""One webhook delivery over HTTP: the URL checked, the body signed, the answer judged.

The client's resolver checks every address it connects to (``GuardedResolver``), so a name
re-pointed at a private address after the endpoint was saved is refused too. Redirects are
not followed: a 3xx is a failed attempt like any other non-2xx, so only the checked URL is
ever connected to. A receiver's answer is read only in part: a hostile receiver could
stream gigabytes.
"""

from __future__ import annotations

import time

import aiohttp

from notifyhub.db.webhooks import Attempt, Target
from notifyhub.model.messages import WebhookDelivery
from notifyhub.webhooks import endpoint_secrets, signing
from notifyhub.webhooks.addresses import (
    AddressPolicy,
    AddressRefused,
    GuardedResolver,
    InvalidUrl,
    parse_url,
)

# Kept in the log of an attempt: enough of an error to see what went wrong.
MAX_ERROR_LENGTH = 500
# Of a receiver's non-2xx answer, only this much is read, and of that only an excerpt is
# kept in the error.
MAX_ANSWER_BYTES = 4096
ANSWER_EXCERPT_LENGTH = 200
USER_AGENT = "NotifyHub-Webhooks/1"


class WebhookSender:
    """The worker's HTTP client for webhooks (opened on first use)."""

    def __init__(
        self,
        policy: AddressPolicy,
        secret_keys: tuple[str, ...],
        concurrency: int,
        timeout_seconds: float,
    ) -> None:
        self._policy = policy
        self._secret_keys = secret_keys
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._policy), limit=self._concurrency
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, headers={"User-Agent": USER_AGENT}
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def attempt(self, delivery: WebhookDelivery, target: Target) -> Attempt:
        """Deliver once; what happened, to log (a failure is never raised)."""
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        refused = False
        try:
            url = parse_url(target.url)
            self._policy.check_url(url)
            secret = endpoint_secrets.decrypt(self._secret_keys, target.secret_ciphertext)
            body = delivery.body.encode()
            headers = signing.headers(
                secret, str(delivery.delivery_id), delivery.event, int(time.time()), body
            )
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                if not 200 <= status < 300:
                    error = f"HTTP {status}: {await _answer_excerpt(response)}"
        except (InvalidUrl, AddressRefused) as exc:
            error, refused = f"refused: {exc}", True
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error, refused = _connection_error(exc)
        return Attempt(
            delivery_id=delivery.delivery_id,
            endpoint_id=delivery.endpoint_id,
            tenant_id=delivery.tenant_id,
            event=delivery.event,
            attempt=delivery.attempt,
            status_code=status,
            error=error[:MAX_ERROR_LENGTH] if error else None,
            succeeded=error is None,
            duration_ms=(time.perf_counter() - started) * 1000,
            refused=refused,
        )


async def _answer_excerpt(response: aiohttp.ClientResponse) -> str:
    """The start of the answer's body: at most ``MAX_ANSWER_BYTES`` are read, whatever it
    says its length is, and bytes its charset cannot decode are replaced."""
    start = bytearray()
    while len(start) < MAX_ANSWER_BYTES:
        chunk = await response.content.read(MAX_ANSWER_BYTES - len(start))
        if not chunk:
            break
        start += chunk
    try:
        text = start.decode(response.charset or "utf-8", errors="replace")
    except LookupError:
        text = start.decode("utf-8", errors="replace")
    return text[:ANSWER_EXCERPT_LENGTH]


def _connection_error(exc: Exception) -> tuple[str, bool]:
    """What went wrong, and whether it was a refusal (``GuardedResolver``'s arrives wrapped
    by aiohttp)."""
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, AddressRefused):
        return f"refused: {exc.os_error}", True
    return f"{type(exc).__name__}: {exc}", False
