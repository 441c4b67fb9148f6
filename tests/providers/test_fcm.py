"""The FCM provider (firebase-admin's async API) against a local FCM HTTP v1 server.

The server runs in the test's own event loop: a token refresh that blocked the loop
could never be answered, so every test that sends also shows that it does not.
"""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import firebase_admin
import pytest

from notifyhub.model.channels import Channel
from notifyhub.model.messages import Notification
from notifyhub.providers.base import ProviderConfigError
from notifyhub.providers.fcm import FcmProvider, create
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import Settings
from tests.support.providers import refusal
from tests.support.servers.fcm import FakeFcm
from tests.support.stack import free_port

LOOPBACK = "127.0.0.1"


@pytest.fixture
async def fcm(tmp_path: Path) -> AsyncIterator[FakeFcm]:
    server = FakeFcm(tmp_path / "service-account.json")
    await server.start()
    yield server
    await server.stop()


def provider_for(env: dict[str, str]) -> FcmProvider:
    # Strings, as in the environment: pydantic validates them into the fields' types.
    settings = Settings(**cast(dict[str, Any], env))
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


async def test_pushes_are_sent_with_a_token_from_the_service_account_grant(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    notifications = [push(f"device-{n}") for n in range(3)]
    results = await asyncio.gather(*(provider.send(n) for n in notifications))
    received = {m["token"]: m for m in fcm.messages}
    for notification, result in zip(notifications, results, strict=True):
        message = received[notification.recipient_address]
        assert result.provider_message_id == message["name"]
        assert message["notification"] == {"title": "Ping", "body": "You have mail"}
        assert message["data"] == {"notification_id": str(notification.id)}
    assert fcm.tokens_issued == 1, "concurrent sends share one token refresh"
    await provider.send(push("device-4"))
    assert fcm.tokens_issued == 1, "the access token is reused until it expires"


async def test_nothing_but_the_configured_servers_is_contacted(
    provider: FcmProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-auth's own request hook would also look the service account up at
    iamcredentials.googleapis.com, from a background thread."""
    looked_up: list[Any] = []
    resolve = socket.getaddrinfo

    def recording(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        if host != LOOPBACK:
            raise socket.gaierror(f"the test may not reach {host}")
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    await provider.send(push("device-1"))
    await asyncio.sleep(0.2)  # room for a background thread to show itself
    assert set(looked_up) <= {LOOPBACK}


async def test_a_token_fcm_no_longer_accepts_is_replaced_once(
    provider: FcmProvider, fcm: FakeFcm
) -> None:
    await provider.send(push("device-1"))
    fcm.revoke_tokens()
    await provider.send(push("device-2"))
    assert fcm.tokens_issued == 2
    assert [m["token"] for m in fcm.messages] == ["device-1", "device-2"]


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


@pytest.mark.parametrize(
    ("status", "code"), [(429, "QUOTA_EXCEEDED"), (500, "INTERNAL"), (503, "UNAVAILABLE")]
)
async def test_quota_and_server_errors_are_temporary_and_not_retried_inside(
    provider: FcmProvider, fcm: FakeFcm, status: int, code: str
) -> None:
    fcm.fail_next(1, status=status)
    error = await refusal(provider, push("device-1"))
    assert (error.temporary, error.code, error.address_invalid) == (True, code, False)
    assert fcm.requests == 1, "firebase-admin's own retries are off: the pipeline retries"
    await provider.send(push("device-1"))


async def test_an_fcm_that_is_down_is_temporary(provider: FcmProvider, fcm: FakeFcm) -> None:
    fcm.set_down(True)
    assert (await refusal(provider, push("device-1"))).temporary
    fcm.set_down(False)
    await provider.send(push("device-1"))


async def test_an_unreachable_fcm_is_temporary(fcm: FakeFcm) -> None:
    provider = provider_for({**fcm.env(), "NOTIFYHUB_FCM_API_URL": f"http://{LOOPBACK}:{free_port()}"})
    try:
        assert (await refusal(provider, push("device-1"))).temporary
    finally:
        await provider.close()


async def test_an_unreachable_token_endpoint_is_temporary(fcm: FakeFcm) -> None:
    provider = provider_for(fcm.env())
    await fcm.stop()
    try:
        assert (await refusal(provider, push("device-1"))).temporary
    finally:
        await provider.close()


async def test_a_send_that_takes_too_long_is_temporary(provider: FcmProvider) -> None:
    error = provider.classify(TimeoutError())
    assert error is not None and error.temporary


def test_missing_or_broken_credentials_stop_the_provider_from_being_built(tmp_path: Path) -> None:
    with pytest.raises(ProviderConfigError, match="NOTIFYHUB_FCM_CREDENTIALS_FILE"):
        provider_for({})
    for name, content in [
        ("missing.json", None),
        ("not-json.json", "{"),
        ("user.json", json.dumps({"type": "authorized_user"})),
        ("no-key.json", json.dumps({"type": "service_account", "project_id": "p"})),
    ]:
        path = tmp_path / name
        if content is not None:
            path.write_text(content)
        with pytest.raises(ProviderConfigError, match="NOTIFYHUB_FCM_CREDENTIALS_FILE"):
            provider_for({"NOTIFYHUB_FCM_CREDENTIALS_FILE": str(path)})


async def test_a_project_id_is_required(fcm: FakeFcm, tmp_path: Path) -> None:
    account = json.loads(fcm.credentials_file.read_text())
    del account["project_id"]
    anonymous = tmp_path / "no-project.json"
    anonymous.write_text(json.dumps(account))
    with pytest.raises(ProviderConfigError, match="NOTIFYHUB_FCM_PROJECT_ID"):
        provider_for({"NOTIFYHUB_FCM_CREDENTIALS_FILE": str(anonymous)})
    provider = provider_for({**fcm.env(), "NOTIFYHUB_FCM_CREDENTIALS_FILE": str(anonymous)})
    try:
        await provider.send(push("device-1"))
    finally:
        await provider.close()


async def test_close_releases_the_firebase_app(fcm: FakeFcm) -> None:
    # The SDK has no public list of its initialised apps.
    before = set(firebase_admin._apps)  # noqa: SLF001
    provider = provider_for(fcm.env())
    await provider.send(push("device-1"))
    await provider.close()
    await provider.close()
    assert set(firebase_admin._apps) == before  # noqa: SLF001


async def test_an_error_fcm_did_not_give_is_not_classified(provider: FcmProvider) -> None:
    assert provider.classify(KeyError("bug")) is None
