"""Preferences, device tokens and recipient profiles."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.support.api import Tenant, call
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


async def test_preferences_put_get_delete(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    url = f"{worker.base_url}/api/v1/users/user-9/preferences"
    status, body = await call(
        http,
        "PUT",
        f"{url}/sms",
        json={
            "quiet_hours_start": "22:00",
            "quiet_hours_end": "07:30",
            "frequency_cap": 3,
            "timezone": "Europe/Paris",
        },
        headers=tenant.headers,
    )
    assert status == 200
    saved = body["data"]
    assert saved["enabled"] is True  # omitted enabled stays true
    assert (saved["quiet_hours_start"], saved["quiet_hours_end"]) == ("22:00", "07:30")
    assert saved["frequency_window_minutes"] == 60
    await call(http, "PUT", f"{url}/email", json={"enabled": False}, headers=tenant.headers)

    status, body = await call(http, "GET", url, headers=tenant.headers)
    assert status == 200
    assert [(p["channel"], p["enabled"]) for p in body["data"]] == [("email", False), ("sms", True)]

    assert (await call(http, "DELETE", f"{url}/sms", headers=tenant.headers))[0] == 204
    # Deleting again, or a preference never set, is a 204 too, as NotifyHub answers.
    assert (await call(http, "DELETE", f"{url}/sms", headers=tenant.headers))[0] == 204
    assert (await call(http, "DELETE", f"{url}/push", headers=tenant.headers))[0] == 204
    _, body = await call(http, "GET", url, headers=tenant.headers)
    assert [p["channel"] for p in body["data"]] == ["email"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quiet_hours_start": "25:00", "quiet_hours_end": "07:00"}, "quiet_hours_start"),
        ({"quiet_hours_start": "22:00"}, "quiet_hours_end"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"frequency_cap": 0}, "frequency_cap"),
        ({"frequency_window_minutes": 0}, "frequency_window_minutes"),
        ({"enabled": "maybe"}, "enabled"),
        ({"mute": True}, "mute"),
    ],
)
async def test_invalid_preferences_are_a_422_naming_the_field(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    status, answer = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/u/preferences/push",
        json=body,
        headers=tenant.headers,
    )
    assert status == 422
    assert field in answer["error"]["details"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
async def test_an_unknown_channel_in_the_path_is_a_422(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, method: str
) -> None:
    status, answer = await call(
        http,
        method,
        f"{worker.base_url}/api/v1/users/u/preferences/fax",
        json={},
        headers=tenant.headers,
    )
    assert status == 422 and "channel" in answer["error"]["details"]


async def test_device_tokens_upsert_reactivate_and_deactivate(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    url = f"{worker.base_url}/api/v1/device-tokens"
    token = {"user_id": "user-1", "token": "fcm-token-abc", "platform": "android"}
    status, first = await call(http, "POST", url, json=token, headers=tenant.headers)
    assert status == 201 and first["data"]["is_active"] is True

    assert (await call(http, "DELETE", f"{url}/fcm-token-abc", headers=tenant.headers))[0] == 204
    # An inactive or unknown token is a 204 too, as NotifyHub answers.
    assert (await call(http, "DELETE", f"{url}/fcm-token-abc", headers=tenant.headers))[0] == 204
    assert (await call(http, "DELETE", f"{url}/never-registered", headers=tenant.headers))[0] == 204
    active = await database.fetchval(
        "SELECT is_active FROM device_tokens WHERE tenant_id = $1 AND token = $2",
        tenant.id,
        "fcm-token-abc",
    )
    assert active is False

    status, again = await call(
        http, "POST", url, json={**token, "user_id": "user-2"}, headers=tenant.headers
    )
    assert status == 201
    assert again["data"]["id"] == first["data"]["id"]
    assert (again["data"]["is_active"], again["data"]["user_id"]) == (True, "user-2")

    status, body = await call(
        http, "POST", url, json={**token, "platform": "blackberry"}, headers=tenant.headers
    )
    assert status == 422 and "platform" in body["error"]["details"]


async def test_profiles_put_get_delete_and_validate(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    url = f"{worker.base_url}/api/v1/users/ada"
    assert (await call(http, "GET", url, headers=tenant.headers))[0] == 404
    status, body = await call(
        http,
        "PUT",
        url,
        json={
            "email": "ada@example.com",
            "phone": "+447700900123",
            "locale": "en-GB",
            "timezone": "Europe/London",
        },
        headers=tenant.headers,
    )
    assert status == 200 and body["data"]["email"] == "ada@example.com"
    status, body = await call(http, "GET", url, headers=tenant.headers)
    assert status == 200 and body["data"]["timezone"] == "Europe/London"

    for bad, field in (
        ({"email": "not-an-email"}, "email"),
        ({"phone": "0123"}, "phone"),
        ({"timezone": "Nowhere/Place"}, "timezone"),
    ):
        status, body = await call(http, "PUT", url, json=bad, headers=tenant.headers)
        assert status == 422 and field in body["error"]["details"], bad

    assert (await call(http, "DELETE", url, headers=tenant.headers))[0] == 204
    assert (await call(http, "GET", url, headers=tenant.headers))[0] == 404


async def test_email_without_an_address_takes_the_profile_email_or_is_a_422(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    send = {"channel": "email", "recipient_id": "grace", "payload": {"body": "hi"}}
    status, body = await call(
        http, "POST", f"{worker.base_url}/api/v1/notifications", json=send, headers=tenant.headers
    )
    assert status == 422 and "recipient_address" in body["error"]["details"]

    await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/grace",
        json={"email": "grace@example.com"},
        headers=tenant.headers,
    )
    status, body = await call(
        http, "POST", f"{worker.base_url}/api/v1/notifications", json=send, headers=tenant.headers
    )
    assert status == 202
    assert body["data"]["recipient_address"] == "grace@example.com"


async def test_a_preference_without_a_timezone_takes_the_profiles(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/kenji",
        json={"timezone": "Asia/Tokyo"},
        headers=tenant.headers,
    )
    status, body = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/kenji/preferences/push",
        json={"quiet_hours_start": "22:00", "quiet_hours_end": "07:00"},
        headers=tenant.headers,
    )
    assert status == 200 and body["data"]["timezone"] == "Asia/Tokyo"
    status, body = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/no-profile/preferences/push",
        json={"quiet_hours_start": "22:00", "quiet_hours_end": "07:00"},
        headers=tenant.headers,
    )
    assert status == 200 and body["data"]["timezone"] == "UTC"
