"""One-click unsubscribe (RFC 8058) and per-category preferences against the real stack:
every e-mail carries its signed link; a POST turns the category (or the channel) off
without a login, a GET only asks; expired and forged links change nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from notifyhub.model.channels import Channel
from notifyhub.receipts import unsubscribe
from notifyhub.runtime.settings import Settings
from tests.support.api import Tenant, call, eventually, send_notification, wait_for_status
from tests.support.servers.smtp import FakeSmtp
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

PUBLIC_URL = "https://notify.example.test"
LINK = re.compile(r"^<https://notify\.example\.test/unsubscribe/([^>]+)>$")


@pytest.fixture(scope="module")
def mailing(worker_factory: Callable[..., Worker], smtp: FakeSmtp) -> Worker:
    return worker_factory(
        **smtp.env(),
        NOTIFYHUB_SINK_CHANNELS="sms,push",
        NOTIFYHUB_EMAIL_PROVIDERS="smtp",
        NOTIFYHUB_PUBLIC_URL=PUBLIC_URL,
    )


async def mail(
    http: aiohttp.ClientSession,
    worker: Worker,
    tenant: Tenant,
    smtp: FakeSmtp,
    recipient: str,
    **more: object,
) -> dict[str, Any]:
    """Send an e-mail and return the notification as it ended, with the message SMTP got."""
    subject = f"mail {uuid.uuid4().hex[:8]}"
    sent = await send_notification(
        http,
        worker,
        tenant,
        channel="email",
        recipient_id=recipient,
        recipient_address=f"{recipient}@example.com",
        payload={"subject": subject, "body": "hello"},
        **more,
    )
    done = await wait_for_status(http, worker, tenant, sent["id"])
    done["smtp"] = next((m for m in smtp.messages if m["subject"] == subject), None)
    return done


def token_of(message: dict[str, Any]) -> str:
    match = LINK.match(message["list_unsubscribe"])
    assert match, message["list_unsubscribe"]
    return match.group(1)


async def test_the_link_s_post_turns_its_category_off_and_its_get_only_asks(
    mailing: Worker, tenant: Tenant, http: aiohttp.ClientSession, smtp: FakeSmtp
) -> None:
    first = await mail(http, mailing, tenant, smtp, "ann", category="newsletter")
    assert first["status"] == "sent"
    assert first["smtp"]["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    link = f"{mailing.base_url}/unsubscribe/{token_of(first['smtp'])}"

    async with http.get(link) as response:
        assert response.status == 200
        page = await response.text()
    assert "Stop receiving newsletter notifications by email?" in page and 'method="post"' in page
    assert (await mail(http, mailing, tenant, smtp, "ann", category="newsletter"))["status"] == "sent"

    async with http.post(link, data="List-Unsubscribe=One-Click") as response:
        assert response.status == 200
        assert "Unsubscribed" in await response.text()

    async def dropped() -> dict[str, Any] | None:
        found = await mail(http, mailing, tenant, smtp, "ann", category="newsletter")
        return found if found["status"] == "dropped" else None

    found = await eventually(dropped, "the newsletter to be dropped")
    assert found["status_reason"] == "the recipient turned newsletter off on the email channel"
    assert found["smtp"] is None
    # Only that category: another one, and mail without one, still go out.
    assert (await mail(http, mailing, tenant, smtp, "ann", category="billing"))["status"] == "sent"
    assert (await mail(http, mailing, tenant, smtp, "ann"))["status"] == "sent"
    _, listed = await call(
        http,
        "GET",
        f"{mailing.base_url}/api/v1/users/ann/preferences/email/categories",
        headers=tenant.headers,
    )
    assert [(p["category"], p["enabled"]) for p in listed["data"]] == [("newsletter", False)]


async def test_a_link_without_a_category_turns_the_channel_off(
    mailing: Worker, tenant: Tenant, http: aiohttp.ClientSession, smtp: FakeSmtp
) -> None:
    first = await mail(http, mailing, tenant, smtp, "bob")
    async with http.post(f"{mailing.base_url}/unsubscribe/{token_of(first['smtp'])}") as response:
        assert response.status == 200
    _, listed = await call(
        http, "GET", f"{mailing.base_url}/api/v1/users/bob/preferences", headers=tenant.headers
    )
    assert [(p["channel"], p["enabled"]) for p in listed["data"]] == [("email", False)]

    async def dropped() -> dict[str, Any] | None:
        found = await mail(http, mailing, tenant, smtp, "bob", category="billing")
        return found if found["status"] == "dropped" else None

    assert (
        "turned the email channel off"
        in (await eventually(dropped, "mail to be dropped"))["status_reason"]
    )


def worker_settings(worker: Worker) -> Settings:
    return Settings(NOTIFYHUB_WS_TOKEN_SECRET=SecretStr(worker.env["NOTIFYHUB_WS_TOKEN_SECRET"]))


async def test_expired_forged_and_foreign_links_change_nothing(
    mailing: Worker, tenant: Tenant, http: aiohttp.ClientSession, smtp: FakeSmtp
) -> None:
    wanted = unsubscribe.Unsubscribe(tenant.id, "cy", Channel.EMAIL, "alerts")
    settings = worker_settings(mailing)
    expired = unsubscribe.issue(settings, wanted, now=1_000_000_000.0)
    other_secret = Settings(NOTIFYHUB_WS_TOKEN_SECRET=SecretStr("x" * 40))
    genuine = unsubscribe.issue(settings, wanted)
    _, inbox_token = await call(
        http,
        "POST",
        f"{mailing.base_url}/api/v1/ws-token",
        json={"recipient_id": "cy"},
        headers=tenant.headers,
    )
    cases = {
        expired: 410,
        unsubscribe.issue(other_secret, wanted): 403,
        genuine[:-2] + ("AA" if not genuine.endswith("AA") else "BB"): 403,
        inbox_token["data"]["token"]: 403,
        "not-a-token": 403,
    }
    for token, status in cases.items():
        async with http.post(f"{mailing.base_url}/unsubscribe/{token}") as response:
            assert response.status == status, token
    assert (await mail(http, mailing, tenant, smtp, "cy", category="alerts"))["status"] == "sent"


async def test_category_preferences_through_the_api(
    mailing: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    base = f"{mailing.base_url}/api/v1/users/dee/preferences/sms/categories"
    status, body = await call(
        http, "PUT", f"{base}/promotions", json={"enabled": False}, headers=tenant.headers
    )
    assert status == 200, body
    assert (body["data"]["category"], body["data"]["enabled"]) == ("promotions", False)

    async def dropped() -> dict[str, Any] | None:
        sent = await send_notification(
            http,
            mailing,
            tenant,
            channel="sms",
            recipient_id="dee",
            recipient_address="+15005550006",
            category="promotions",
            payload={"body": "50% off"},
        )
        found = await wait_for_status(http, mailing, tenant, sent["id"])
        return found if found["status"] == "dropped" else None

    await eventually(dropped, "the promotion to be dropped")
    status, body = await call(
        http, "PUT", f"{base}/Not%20A%20Category", json={"enabled": False}, headers=tenant.headers
    )
    assert status == 422 and "category" in body["error"]["details"]
    status, body = await call(
        http,
        "POST",
        f"{mailing.base_url}/api/v1/notifications",
        json={
            "channel": "sms",
            "recipient_id": "dee",
            "recipient_address": "+15005550006",
            "category": "Bad Category",
            "payload": {"body": "x"},
        },
        headers=tenant.headers,
    )
    assert status == 422 and "category" in body["error"]["details"]
    assert (await call(http, "DELETE", f"{base}/promotions", headers=tenant.headers))[0] == 204
    _, listed = await call(http, "GET", base, headers=tenant.headers)
    assert listed["data"] == []
