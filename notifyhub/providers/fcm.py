"""Push through FCM HTTP v1 with ``firebase-admin``'s asyncio API (``send_each_async``).

One call sends to one device token; fan-out to a recipient's tokens, and deactivating
the tokens FCM calls dead, are the delivery machinery's (``delivery/dispatch.py``).

Three things firebase-admin does not offer, done here:

- **No blocking.** Its async HTTP client (httpx) refreshes the OAuth2 token through
  google-auth's synchronous ``requests`` transport when the token has expired. The token
  is refreshed here first, in a thread, so the event loop never waits on Google's token
  endpoint (about once an hour).
- **No retries of its own.** Its default transport retries 500/503 up to four times with
  backoff inside one call; the pipeline retries, fails over and trips breakers itself,
  so the client is rebuilt with retries off.
- **Another endpoint.** The FCM URL is fixed in the SDK; ``NOTIFYHUB_FCM_API_URL`` (a
  local server in tests and benchmarks) replaces it.

The last two set private attributes of firebase-admin's messaging service
(``_async_client``, ``_fcm_url``), which is why the dependency is pinned below 8.

FCM has no idempotency key; ``data.notification_id`` lets the app drop a duplicate.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import httpx
from firebase_admin import _http_client, _retry, credentials, exceptions, messaging

from notifyhub.channels import Channel
from notifyhub.messages import Notification
from notifyhub.providers.base import ProviderConfigError, ProviderError, SendResult
from notifyhub.resources import Resources
from notifyhub.settings import Settings

# firebase-admin 7 steers new code to Firebase installation ids (``fid``); the device-token
# API stores FCM registration tokens, which ``token`` still addresses.
warnings.filterwarnings("ignore", message="Message.token is deprecated", category=DeprecationWarning)

# FCM answers that mean the token is dead: the app was uninstalled, or the token
# belongs to another sender. Firebase's guidance is to stop sending to it.
DEAD_TOKEN_ERRORS = (messaging.UnregisteredError, messaging.SenderIdMismatchError)
# The request itself is wrong (or, for INVALID_ARGUMENT, possibly the token): not retryable.
PERMANENT_ERRORS = (
    exceptions.InvalidArgumentError,
    messaging.ThirdPartyAuthError,
    exceptions.PermissionDeniedError,
    exceptions.NotFoundError,
    exceptions.UnauthenticatedError,
    exceptions.FailedPreconditionError,
)


class FcmProvider:
    name = "fcm"
    channel = Channel.PUSH

    def __init__(self, app: firebase_admin.App, api_url: str, timeout: float) -> None:
        self._app = app
        self._api_url = api_url.rstrip("/")
        self._timeout = timeout
        self._credential = app.credential.get_credential()
        self._ready = False
        self._lock = asyncio.Lock()

    async def _prepare(self) -> None:
        """Point the messaging service at our endpoint, without retries, and keep a fresh token."""
        async with self._lock:
            if not self._ready:
                service = messaging._get_messaging_service(self._app)
                service._fcm_url = f"{self._api_url}/v1/projects/{service._project_id}/messages:send"
                service._async_client = _http_client.HttpxAsyncClient(
                    credential=self._credential,
                    timeout=self._timeout,
                    retry_config=_retry.HttpxRetry(max_retries=0),
                )
                self._ready = True
            if not self._credential.valid:
                await asyncio.to_thread(
                    self._credential.refresh, google.auth.transport.requests.Request()
                )

    async def send(self, notification: Notification) -> SendResult:
        await self._prepare()
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
        if isinstance(error, DEAD_TOKEN_ERRORS):
            code = (
                "UNREGISTERED"
                if isinstance(error, messaging.UnregisteredError)
                else "SENDER_ID_MISMATCH"
            )
            return ProviderError(f"FCM: {error}", temporary=False, code=code, address_invalid=True)
        if isinstance(error, PERMANENT_ERRORS):
            return ProviderError(f"FCM: {error}", temporary=False, code=error.code)
        if isinstance(error, exceptions.FirebaseError):
            # QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, and transport failures firebase-admin
            # reports as its own errors (UnknownError, DeadlineExceeded): later may work.
            return ProviderError(f"FCM: {error}", temporary=True, code=error.code)
        if isinstance(
            error, google.auth.exceptions.TransportError | httpx.HTTPError | TimeoutError | OSError
        ):
            return ProviderError(f"FCM unreachable: {error!r}", temporary=True)
        if isinstance(error, google.auth.exceptions.RefreshError):
            return ProviderError(f"FCM token refused: {error}", temporary=True)
        return None

    async def close(self) -> None:
        # Not firebase_admin.delete_app: it closes the messaging service with asyncio.run(),
        # which cannot run inside the worker's event loop. The app itself holds no connection.
        if self._ready:
            await messaging._get_messaging_service(self._app)._async_client.aclose()
            self._ready = False


def create(channel: Channel, settings: Settings, resources: Resources) -> FcmProvider:
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
            "the fcm provider needs NOTIFYHUB_FCM_PROJECT_ID (the credentials name none)"
        )
    app = firebase_admin.initialize_app(
        certificate,
        {"projectId": project_id, "httpTimeout": settings.provider_timeout_seconds},
        name=f"notifyhub-{uuid.uuid4()}",
    )
    return FcmProvider(app, settings.fcm_api_url, settings.provider_timeout_seconds)
