"""The FCM provider (firebase-admin's async API) against a local FCM HTTP v1 server."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from notifyhub.channels import Channel
from notifyhub.messages import Notification
from notifyhub.providers.base import ProviderConfigError
from notifyhub.providers.fcm import FcmProvider, create
from notifyhub.resources import Resources
from notifyhub.settings import Settings
from tests.providers.support import refusal
from tests.servers.fcm import FakeFcm
from tests.stack import free_port


@pytest.fixture
async def fcm(tmp_path: Path) -> AsyncIterator[FakeFcm]:
    server = FakeFcm(tmp_path / "service-account.json")
    await server.start()
    yield server
    await server.stop()


def provider_for(env: dict[str, str]) -> FcmProvider:
    settings = Settings(**env)
    return create(Channel.PUSH, settings, Resources(settings))


@pytest.fixture
async def provider(fcm: FakeFcm) -> AsyncIterator[FcmProvider]:
    push = provider_for(fcm.env())
    yield push
    await push.close()


def push(token: str) -> Notification:
    return Notification(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        channel=Channel.PUSH,
        recipient_id="ada",
        recipient_address=token,
        subject="Ping",
        body="You have mail",
    )


async def test_a_push_is_sent_with_a_token_from_the_service_account_grant(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    notification = push("device-1")
    result = await provider.send(notification)
    [message] = fcm.messages
    assert result.provider_message_id == message["name"]
    assert message["token"] == "device-1"
    assert message["notification"] == {"title": "Ping", "body": "You have mail"}
    assert message["data"] == {"notification_id": str(notification.id)}
    await provider.send(push("device-2"))
    assert fcm.tokens_issued == 1, "the access token is reused until it expires"


@pytest.mark.parametrize(
    ("token", "code", "dead"),
    [
        ("unregistered-1", "UNREGISTERED", True),
        ("mismatch-1", "SENDER_ID_MISMATCH", True),
        ("invalid-1", "INVALID_ARGUMENT", False),
    ],
)
async def test_fcm_refusals_are_permanent_and_dead_tokens_say_so(
    provider: FcmProvider, token: str, code: str, dead: bool
) -> None:
    error = await refusal(provider, push(token))
    assert (error.temporary, error.code, error.address_invalid) == (False, code, dead)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_quota_and_server_errors_are_temporary_and_not_retried_inside(
    provider: FcmProvider, fcm: FakeFcm, status: int
) -> None:
    fcm.fail_next(1, status=status)
    error = await refusal(provider, push("device-1"))
    assert error.temporary and not error.address_invalid
    assert fcm.requests == 1, "firebase-admin's own retries are off: the pipeline retries"
    await provider.send(push("device-1"))


async def test_an_unreachable_fcm_is_temporary(fcm: FakeFcm) -> None:
    provider = provider_for({**fcm.env(), "NOTIFYHUB_FCM_API_URL": f"http://127.0.0.1:{free_port()}"})
    try:
        assert (await refusal(provider, push("device-1"))).temporary
    finally:
        await provider.close()


def test_missing_or_broken_credentials_stop_the_provider_from_being_built(tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match="NOTIFYHUB_FCM_CREDENTIALS_FILE"):
        provider_for({})
    with pytest.raises(ProviderConfigError, match="not a readable service account"):
        provider_for({"NOTIFYHUB_FCM_CREDENTIALS_FILE": str(tmp_path / "missing.json")})
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"type": "authorized_user"}))
    with pytest.raises(ProviderConfigError, match="not a readable service account"):
        provider_for({"NOTIFYHUB_FCM_CREDENTIALS_FILE": str(broken)})


async def test_an_error_fcm_did_not_give_is_not_classified(provider: FcmProvider) -> None:
    assert provider.classify(KeyError("bug")) is None
