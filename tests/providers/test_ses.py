"""The SES provider (aioboto3, SES v2) against moto's server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from botocore.exceptions import ClientError

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError, ProviderError
from notifyhub.providers.ses import SesProvider, create
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings
from tests.support.servers.ses import FakeSes
from tests.support.stack import free_port


def provider_for(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> SesProvider:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    return create(Channel.EMAIL, settings, Resources(settings))


@pytest.fixture
async def provider(ses: FakeSes, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SesProvider]:
    email = provider_for(ses.env(), monkeypatch)
    yield email
    await email.close()


def email(body: str, subject: str = "Welcome") -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel=Channel.EMAIL,
        recipient_id="ada",
        recipient_address="ada@example.com",
        subject=subject,
        body=body,
    )


async def test_an_email_is_sent_with_its_subject_and_html(provider: SesProvider, ses: FakeSes) -> None:
    result = await provider.send(email("<p>Hello <b>Ada</b></p>", subject=f"hi {uuid.uuid4()}"))
    [sent] = [m for m in ses.sent_messages() if m["id"] == result.provider_message_id]
    assert sent["body"] == "<p>Hello <b>Ada</b></p>"
    assert sent["destinations"]["ToAddresses"] == ["ada@example.com"]
    assert sent["subject"].startswith("hi ")


async def test_an_unverified_sender_is_rejected_for_good(
    ses: FakeSes, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = provider_for(
        {**ses.env(), "NOTIFYHUB_EMAIL_FROM": "stranger@elsewhere.test"}, monkeypatch
    )
    try:
        with pytest.raises(ClientError) as raised:
            await provider.send(email("hello"))
    finally:
        await provider.close()
    error = provider.classify(raised.value)
    assert error is not None and (error.temporary, error.code) == (False, "MessageRejected")


async def test_an_unreachable_endpoint_is_temporary(
    ses: FakeSes, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**ses.env(), "NOTIFYHUB_SES_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    provider = provider_for(env, monkeypatch)
    try:
        with pytest.raises(Exception) as raised:
            await provider.send(email("hello"))
    finally:
        await provider.close()
    error = provider.classify(raised.value)
    assert error is not None and error.temporary


@pytest.mark.parametrize(
    ("code", "status", "temporary"),
    [
        ("TooManyRequestsException", 429, True),
        ("LimitExceededException", 400, True),
        ("InternalFailure", 500, True),
        ("SomethingNew", 503, True),
        ("MessageRejected", 400, False),
        ("MailFromDomainNotVerifiedException", 400, False),
        ("BadRequestException", 400, False),
    ],
)
def test_ses_error_codes_are_classified(
    ses: FakeSes, monkeypatch: pytest.MonkeyPatch, code: str, status: int, temporary: bool
) -> None:
    provider = provider_for(ses.env(), monkeypatch)
    error = ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "SendEmail",
    )
    classified = provider.classify(error)
    assert isinstance(classified, ProviderError)
    assert (classified.temporary, classified.code) == (temporary, code)
    assert provider.classify(KeyError("bug")) is None


def test_without_sender_region_or_credentials_the_provider_is_not_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(
        ProviderConfigError, match=r"NOTIFYHUB_EMAIL_FROM, NOTIFYHUB_SES_REGION.*AWS credentials"
    ):
        provider_for({}, monkeypatch)
