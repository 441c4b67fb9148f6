"""Email through AWS SES v2 (``SendEmail``) with ``aioboto3``: never blocks the event loop.

The client is opened on the first send, inside the worker's event loop, and kept;
botocore's own retries are kept to one attempt, since the pipeline retries with backoff
and fails over itself. SES's SendEmail takes no idempotency token: the notification id
travels as an ``EmailTag`` so SES events can be matched to it, and the send stage's claim
keeps a double send to a crash between SES's answer and our record of it.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import AsyncExitStack
from typing import Any

import aioboto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError, ProviderError, SendResult
from notifyhub.providers.email_content import email_content
from notifyhub.receipts import unsubscribe
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings

# SES error codes that no retry can fix: the message, the sender or the account is refused.
PERMANENT_CODES = frozenset(
    {
        "MessageRejected",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "BadRequestException",
        "AccountSuspendedException",
    }
)
# Throttled, over quota for now, or paused: later may work.
TEMPORARY_CODES = frozenset(
    {
        "TooManyRequestsException",
        "LimitExceededException",
        "SendingPausedException",
        "Throttling",
        "ThrottlingException",
        "ServiceUnavailable",
        "InternalFailure",
    }
)


class SesProvider:
    name = "ses"
    channel = Channel.EMAIL

    def __init__(self, settings: Settings, region: str) -> None:
        self._region = region
        self._endpoint_url = settings.ses_endpoint_url
        self._sender = settings.email_from or ""
        self._configuration_set = settings.ses_configuration_set
        self._settings = settings
        self._config = Config(
            connect_timeout=settings.provider_timeout_seconds,
            read_timeout=settings.provider_timeout_seconds,
            retries={"max_attempts": 1, "mode": "standard"},
        )
        self._client: Any = None
        self._exit_stack = AsyncExitStack()
        self._lock = asyncio.Lock()

    async def _ses(self) -> Any:
        async with self._lock:
            if self._client is None:
                session = aioboto3.Session()
                self._client = await self._exit_stack.enter_async_context(
                    session.client(
                        "sesv2",
                        region_name=self._region,
                        endpoint_url=self._endpoint_url,
                        config=self._config,
                    )
                )
            return self._client

    async def send(self, notification: Notification) -> SendResult:
        content = email_content(notification)
        body: dict[str, Any] = {"Text": {"Data": content.text, "Charset": "UTF-8"}}
        if content.html is not None:
            body["Html"] = {"Data": content.html, "Charset": "UTF-8"}
        request: dict[str, Any] = {
            "FromEmailAddress": self._sender,
            "Destination": {"ToAddresses": [notification.recipient_address or ""]},
            "Content": {
                "Simple": {"Subject": {"Data": content.subject, "Charset": "UTF-8"}, "Body": body}
            },
            "EmailTags": [{"Name": "notification_id", "Value": str(notification.id)}],
        }
        headers = unsubscribe.email_headers(self._settings, notification)
        if headers:
            request["Content"]["Simple"]["Headers"] = [
                {"Name": name, "Value": value} for name, value in headers.items()
            ]
        if self._configuration_set:
            request["ConfigurationSetName"] = self._configuration_set
        answer = await (await self._ses()).send_email(**request)
        return SendResult(provider_message_id=answer["MessageId"])

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, ClientError):
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = error.response.get("Error", {}).get("Message", str(error))
            temporary = code in TEMPORARY_CODES or status == 429 or status >= 500
            if code in PERMANENT_CODES:
                temporary = False
            return ProviderError(
                f"SES {code or status}: {message}", temporary=temporary, code=code or None
            )
        if isinstance(error, BotoCoreError | TimeoutError | OSError):
            # Connection refused, DNS, connect or read timeouts: the request never got an answer.
            return ProviderError(f"SES unreachable: {error}", temporary=True)
        return None

    async def close(self) -> None:
        await self._exit_stack.aclose()
        self._client = None


def create(channel: Channel, settings: Settings, resources: Resources) -> SesProvider:
    region = settings.ses_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    missing = []
    if not settings.email_from:
        missing.append("NOTIFYHUB_EMAIL_FROM")
    if not region:
        missing.append("NOTIFYHUB_SES_REGION (or AWS_REGION)")
    # The standard chain: environment, shared files, then container or instance roles
    # (botocore bounds the metadata lookups with a one-second timeout).
    if botocore.session.get_session().get_credentials() is None:
        missing.append(
            "AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile or a role)"
        )
    if missing:
        raise ProviderConfigError(f"the ses provider needs {', '.join(missing)}")
    return SesProvider(settings, region or "")
