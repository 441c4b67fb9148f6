"""The SMTP provider against a local aiosmtpd server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError
from notifyhub.providers.smtp import SmtpProvider, create
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings
from tests.support.providers import refusal
from tests.support.servers.smtp import SENDER, FakeSmtp
from tests.support.stack import free_port


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    server = FakeSmtp()
    server.start()
    yield server
    server.stop()


def provider_for(env: dict[str, str]) -> SmtpProvider:
    # Strings, as in the environment: pydantic validates them into the fields' types.
    settings = Settings(**cast(dict[str, Any], env))
    return create(Channel.EMAIL, settings, Resources(settings))


def email(
    to: str = "ada@example.com", body: str = "Hello Ada", subject: str | None = "Hi"
) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel=Channel.EMAIL,
        recipient_id="ada",
        recipient_address=to,
        subject=subject,
        body=body,
    )


async def test_a_plain_body_is_sent_as_text_with_a_message_id_of_the_notification(
    smtp: FakeSmtp,
) -> None:
    notification = email()
    result = await provider_for(smtp.env()).send(notification)
    [message] = smtp.messages
    assert result.provider_message_id == message["message_id"] == f"<{notification.id}@notifyhub>"
    assert (message["from"], message["to"], message["subject"]) == (SENDER, ["ada@example.com"], "Hi")
    assert message["content_type"] == "text/plain"
    assert message["text"].strip() == "Hello Ada"


async def test_an_html_body_is_sent_with_a_text_alternative(smtp: FakeSmtp) -> None:
    body = '<p>Hello <b>Ada</b>,</p><p>see <a href="https://example.com/x">your account</a></p>'
    await provider_for(smtp.env()).send(email(body=body))
    [message] = smtp.messages
    assert message["content_type"] == "multipart/alternative"
    assert message["html"].strip() == body
    assert message["text"].splitlines() == ["Hello Ada,", "see your account (https://example.com/x)"]


async def test_a_4xx_is_temporary_and_a_refused_recipient_permanent(smtp: FakeSmtp) -> None:
    provider = provider_for(smtp.env())
    smtp.fail_next(1, code=451)
    error = await refusal(provider, email())
    assert (error.temporary, error.code) == (True, "451")
    error = await refusal(provider, email(to="nobody@rejected.test"))
    assert (error.temporary, error.code) == (False, "550")
    await provider.send(email())
    assert len(smtp.messages) == 1


async def test_a_server_that_is_down_or_unreachable_is_temporary(smtp: FakeSmtp) -> None:
    smtp.set_down(True)
    assert (await refusal(provider_for(smtp.env()), email())).temporary
    unreachable = provider_for({**smtp.env(), "NOTIFYHUB_SMTP_PORT": str(free_port())})
    assert (await refusal(unreachable, email())).temporary


def test_without_a_host_the_provider_is_not_built() -> None:
    with pytest.raises(ProviderConfigError, match="NOTIFYHUB_SMTP_HOST, NOTIFYHUB_EMAIL_FROM"):
        provider_for({})
    assert (
        provider_for({"NOTIFYHUB_SMTP_HOST": "h", "NOTIFYHUB_EMAIL_FROM": "a@b"}).classify(KeyError())
        is None
    )
