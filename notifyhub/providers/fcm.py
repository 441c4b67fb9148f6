"""Push through FCM HTTP v1 with ``firebase-admin``'s asyncio API (``send_each_async``).

One call sends to one device token; fan-out to a recipient's tokens, and deactivating
the tokens FCM calls dead, are the delivery machinery's (``delivery/dispatch.py``).

firebase-admin's messaging service is rewired in one place (``FcmProvider.__init__``),
for three things it does not offer:

- **No blocking, and no call to Google but FCM's.** Its async HTTP client (httpx)
  authenticates through google-auth's ``before_request``, which refreshes an expired
  OAuth2 token with the synchronous ``requests`` transport on the event loop, and which
  (google-auth 2.62) also starts a background "regional access boundary" lookup at
  iamcredentials.googleapis.com, whatever endpoint FCM was pointed at. ``OffLoopAuth``
  replaces it: tokens are refreshed in a thread, and only the token endpoint of the
  service account (its ``token_uri``) is ever called.
- **No retries of its own.** Its transport retries 500/503 up to four times with backoff
  inside one call; the pipeline retries, fails over and trips breakers itself.
- **Another endpoint.** The FCM URL is fixed in the SDK; ``NOTIFYHUB_FCM_API_URL``
  (a local server in tests and benchmarks) replaces it.

There is no option for any of them, so the service's private ``_fcm_url`` and
``_async_client`` are set, with the SDK's own client class (``_http_client``): this is
why the dependency is pinned below firebase-admin 8.

FCM HTTP v1 has no idempotency key (a send request is ``message`` and ``validate_only``);
``data.notification_id`` lets the app drop a duplicate.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
import warnings
from collections.abc import AsyncGenerator

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import httpx
from firebase_admin import _http_client, _retry, credentials, exceptions, messaging
from google.auth.credentials import Credentials

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError, ProviderError, SendResult
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings

# FCM answers that mean the token is dead: the app was uninstalled, or the token belongs
# to another sender. Firebase's guidance is to stop sending to it.
DEAD_TOKEN_ERRORS = (messaging.UnregisteredError, messaging.SenderIdMismatchError)
# firebase-admin's FCM-specific errors carry the RPC status as ``code`` (NOT_FOUND for an
# unregistered token); the provider reports FCM's own error code, as the FCM docs name it.
FCM_ERROR_CODES: dict[type[exceptions.FirebaseError], str] = {
    messaging.UnregisteredError: "UNREGISTERED",
    messaging.SenderIdMismatchError: "SENDER_ID_MISMATCH",
    messaging.QuotaExceededError: "QUOTA_EXCEEDED",
    messaging.ThirdPartyAuthError: "THIRD_PARTY_AUTH_ERROR",
}


class OffLoopAuth(httpx.Auth):
    """Google OAuth2 bearer tokens for an httpx client, refreshed in a worker thread.

    google-auth can only refresh synchronously; a refresh (about once an hour, or when
    FCM answers 401) runs in a thread, one at a time, so concurrent sends share it.
    """

    def __init__(self, credential: Credentials, timeout: float) -> None:
        self._credential = credential
        self._transport = google.auth.transport.requests.Request()
        # google-auth waits 120 s for the token endpoint unless told otherwise.
        self._bounded_transport = functools.partial(self._transport, timeout=timeout)
        self._lock = asyncio.Lock()

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._credential.valid:
            await self._refresh(stale_token=None)
        token = self._credential.token
        # google-auth ships py.typed but leaves Credentials.apply unannotated.
        self._credential.apply(request.headers)  # type: ignore[no-untyped-call]
        response = yield request
        if response.status_code == httpx.codes.UNAUTHORIZED:
            # The token was revoked or the server forgot it: one new token, one more try.
            await self._refresh(stale_token=token)
            self._credential.apply(request.headers)  # type: ignore[no-untyped-call]  # as above
            yield request

    async def _refresh(self, stale_token: str | None) -> None:
        async with self._lock:
            # Another send may have refreshed while this one waited for the lock.
            if self._credential.valid and self._credential.token != stale_token:
                return
            await asyncio.to_thread(self._credential.refresh, self._bounded_transport)

    def close(self) -> None:
        self._transport.session.close()


class FcmProvider:
    """Sends one push to one FCM registration token, through its own firebase app."""

    name = "fcm"
    channel = Channel.PUSH

    def __init__(self, app: firebase_admin.App, api_url: str, timeout: float) -> None:
        self._app = app
        self._auth = OffLoopAuth(app.credential.get_credential(), timeout)
        # Without a credential the SDK's client adds no auth flow of its own; ours is set
        # on its httpx client (a public httpx attribute).
        self._client = _http_client.HttpxAsyncClient(
            retry_config=_retry.HttpxRetry(max_retries=0), timeout=timeout
        )
        self._client.async_client.auth = self._auth
        service = messaging._get_messaging_service(app)
        service._fcm_url = f"{api_url.rstrip('/')}/v1/projects/{app.project_id}/messages:send"
        service._async_client = self._client
        self._closed = False

    async def send(self, notification: Notification) -> SendResult:
        # firebase-admin 7 steers new code to Firebase installation ids (``fid``); the
        # device-token API stores FCM registration tokens, which ``token`` still addresses.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Message.token is deprecated", DeprecationWarning)
            message = messaging.Message(
                token=notification.recipient_address,
                notification=messaging.Notification(title=notification.subject, body=notification.body),
                data={"notification_id": str(notification.id)},
            )
        batch = await messaging.send_each_async([message], app=self._app)
        [response] = batch.responses
        if not response.success:
            raise response.exception
        return SendResult(provider_message_id=response.message_id)

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, exceptions.UnknownError) and error.http_response is None:
            # firebase-admin wraps what is not an HTTP answer (a transport error, a token
            # refresh that failed, or a bug of ours): the cause decides.
            return self.classify(error.cause) if isinstance(error.cause, Exception) else None
        if isinstance(error, exceptions.FirebaseError):
            code = FCM_ERROR_CODES.get(type(error), error.code)
            if isinstance(error, DEAD_TOKEN_ERRORS):
                return ProviderError(f"FCM: {error}", temporary=False, code=code, address_invalid=True)
            # No response: firebase-admin's name for a timeout or a refused connection.
            status = error.http_response.status_code if error.http_response is not None else None
            temporary = status is None or status == httpx.codes.TOO_MANY_REQUESTS or status >= 500
            return ProviderError(f"FCM: {error}", temporary=temporary, code=code)
        if isinstance(error, google.auth.exceptions.RefreshError):
            return ProviderError(
                f"FCM's token endpoint refused the service account: {error}",
                temporary=error.retryable,
            )
        if isinstance(
            error,
            httpx.HTTPError
            | google.auth.exceptions.TransportError
            | google.auth.exceptions.TimeoutError
            | TimeoutError
            | ConnectionError,
        ):
            return ProviderError(f"FCM unreachable: {error!r}", temporary=True)
        return None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._client.aclose()
        self._auth.close()
        # delete_app closes the messaging service with asyncio.run(), which cannot run in
        # the worker's event loop; in a thread it finds the client already closed.
        await asyncio.to_thread(firebase_admin.delete_app, self._app)


def create(channel: Channel, settings: Settings, resources: Resources) -> FcmProvider:
    """An FCM provider from the service account file (ProviderConfigError when unusable)."""
    path = settings.fcm_credentials_file
    if path is None:
        raise ProviderConfigError(
            "the fcm provider needs NOTIFYHUB_FCM_CREDENTIALS_FILE (a service account JSON file)"
        )
    try:
        certificate = credentials.Certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ProviderConfigError(
            f"NOTIFYHUB_FCM_CREDENTIALS_FILE={path} is not a readable service account JSON file: {exc}"
        ) from None
    project_id = settings.fcm_project_id or certificate.project_id
    if not project_id:
        raise ProviderConfigError(
            f"the fcm provider needs NOTIFYHUB_FCM_PROJECT_ID ({path} names no project_id)"
        )
    app = firebase_admin.initialize_app(
        certificate,
        {"projectId": project_id, "httpTimeout": settings.provider_timeout_seconds},
        name=f"notifyhub-fcm-{uuid.uuid4()}",
    )
    return FcmProvider(app, settings.fcm_api_url, settings.provider_timeout_seconds)
