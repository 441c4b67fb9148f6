"""Email over SMTP, for self-hosters: ``aiosmtplib``, so a send never blocks the event loop.

One connection per message (with the provider timeout): simple and robust against
servers that drop idle connections; a relay that needs more throughput is better served
by SES. The ``Message-ID`` is derived from the notification id, the nearest SMTP has to
an idempotency key: a message sent twice after a crash carries the same id, which mail
stores and receivers use to drop duplicates.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError, ProviderError, SendResult
from notifyhub.providers.email_content import email_content
from notifyhub.receipts import unsubscribe
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings


def message_id(notification: Notification) -> str:
    return f"<{notification.id}@notifyhub>"


class SmtpProvider:
    name = "smtp"
    channel = Channel.EMAIL

    def __init__(self, settings: Settings) -> None:
        self._host = settings.smtp_host or ""
        self._port = settings.smtp_port
        self._username = settings.smtp_username
        self._password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self._security = settings.smtp_security
        self._sender = settings.email_from or ""
        self._timeout = settings.provider_timeout_seconds
        self._settings = settings

    def _message(self, notification: Notification) -> EmailMessage:
        content = email_content(notification)
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = notification.recipient_address or ""
        message["Subject"] = content.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id(notification)
        for name, value in unsubscribe.email_headers(self._settings, notification).items():
            message[name] = value
        message.set_content(content.text)
        if content.html is not None:
            message.add_alternative(content.html, subtype="html")
        return message

    async def send(self, notification: Notification) -> SendResult:
        await aiosmtplib.send(
            self._message(notification),
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._security == "tls",
            start_tls=True if self._security == "starttls" else False,
            timeout=self._timeout,
        )
        return SendResult(provider_message_id=message_id(notification))

    def classify(self, error: Exception) -> ProviderError | None:
        if isinstance(error, aiosmtplib.SMTPAuthenticationError):
            return ProviderError(f"SMTP login refused: {error}", temporary=False, code=str(error.code))
        if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
            codes = [refusal.code for refusal in error.recipients]
            code = codes[0] if codes else 550
            return ProviderError(
                f"SMTP refused the recipient: {error}", temporary=400 <= code < 500, code=str(code)
            )
        if isinstance(error, aiosmtplib.SMTPResponseException):
            # 4xx: try again later; 5xx: the server will not take this message.
            return ProviderError(
                f"SMTP answered {error.code}: {error.message}",
                temporary=400 <= error.code < 500,
                code=str(error.code),
            )
        if isinstance(error, aiosmtplib.SMTPException | TimeoutError | OSError):
            return ProviderError(f"SMTP server unreachable: {error!r}", temporary=True)
        return None

    async def close(self) -> None:
        """Nothing is kept open between sends."""


def create(channel: Channel, settings: Settings, resources: Resources) -> SmtpProvider:
    missing = [
        name
        for name, value in (
            ("NOTIFYHUB_SMTP_HOST", settings.smtp_host),
            ("NOTIFYHUB_EMAIL_FROM", settings.email_from),
        )
        if not value
    ]
    if missing:
        raise ProviderConfigError(f"the smtp provider needs {', '.join(missing)}")
    return SmtpProvider(settings)
