"""The Twilio provider against a local server speaking Twilio's Messages API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError
from notifyhub.providers.twilio import TwilioProvider, create
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings
from tests.support.providers import refusal
from tests.support.servers.twilio import FROM_NUMBER, FakeTwilio
from tests.support.stack import free_port


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    server = FakeTwilio()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def provider(twilio: FakeTwilio) -> AsyncIterator[TwilioProvider]:
    sms = provider_for(twilio.env())
    yield sms
    await sms.close()


def provider_for(env: dict[str, str]) -> TwilioProvider:
    # Strings, as in the environment: pydantic validates them into the fields' types.
    settings = Settings(**cast(dict[str, Any], env))
    return create(Channel.SMS, settings, Resources(settings))


def sms(to: str, body: str = "Your code is 123456") -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel=Channel.SMS,
        recipient_id="u",
        recipient_address=to,
        body=body,
    )


async def test_a_message_is_sent_and_its_sid_returned(
    provider: TwilioProvider, twilio: FakeTwilio
) -> None:
    result = await provider.send(sms("+15551234567", "hello"))
    [message] = twilio.messages
    assert result.provider_message_id == message["sid"]
    assert message["sid"].startswith("SM")
    assert (message["to"], message["from"], message["body"]) == ("+15551234567", FROM_NUMBER, "hello")


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", "21211"),
        ("+15005550004", "21610"),
        ("+15005550009", "21614"),
        ("+15005550002", "21612"),
    ],
)
async def test_twilio_refusals_are_permanent_with_their_code(
    provider: TwilioProvider, to: str, code: str
) -> None:
    error = await refusal(provider, sms(to))
    assert not error.temporary
    assert error.code == code
    # Only "unsubscribed recipient" says the number opted out (and is to be suppressed).
    assert error.opted_out is (code == "21610")


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_throttling_and_server_errors_are_temporary(
    provider: TwilioProvider, twilio: FakeTwilio, status: int
) -> None:
    twilio.fail_next(1, status=status)
    error = await refusal(provider, sms("+15551234567"))
    assert error.temporary
    assert f"HTTP {status}" in str(error)
    await provider.send(sms("+15551234567"))


async def test_wrong_credentials_are_permanent(twilio: FakeTwilio) -> None:
    provider = provider_for({**twilio.env(), "TWILIO_AUTH_TOKEN": "wrong"})
    try:
        error = await refusal(provider, sms("+15551234567"))
    finally:
        await provider.close()
    assert (error.temporary, error.code) == (False, "20003")


async def test_an_unreachable_twilio_is_temporary(twilio: FakeTwilio) -> None:
    closed_port = free_port()
    provider = provider_for(
        {**twilio.env(), "NOTIFYHUB_TWILIO_API_URL": f"http://127.0.0.1:{closed_port}"}
    )
    try:
        error = await refusal(provider, sms("+15551234567"))
    finally:
        await provider.close()
    assert error.temporary


def test_missing_credentials_stop_the_provider_from_being_built() -> None:
    with pytest.raises(ProviderConfigError, match="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN"):
        provider_for({})


def test_an_error_twilio_did_not_give_is_not_classified() -> None:
    provider = provider_for(
        {"TWILIO_ACCOUNT_SID": "AC1", "TWILIO_AUTH_TOKEN": "t", "NOTIFYHUB_TWILIO_FROM": "+1"}
    )
    assert provider.classify(KeyError("bug")) is None
