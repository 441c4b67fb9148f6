"""Locale variants on the real stack: the variant each notification gets, the locale in the
delivery log, and the payload's title in the in-app inbox."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis

from tests.support.api import Tenant, call, eventually, send_notification, wait_for_status
from tests.support.sink import sunk
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

RECEIPT = {
    "name": "receipt",
    "channel": "email",
    "subject_template": "Receipt {{ order }}",
    "body_template": "Thanks, {{ name }}",
    "locales": {
        "pt": {"subject_template": "Recibo {{ order }}", "body_template": "Obrigado, {{ name }}"},
        "de": {"subject_template": "Beleg {{ order }}", "body_template": "Danke, {{ name }}"},
    },
}


async def setup(http: aiohttp.ClientSession, worker: Worker, tenant: Tenant, locale: str) -> None:
    """The receipt template, and a recipient ``ana`` whose profile has ``locale``."""
    status, body = await call(
        http, "POST", f"{worker.base_url}/api/v1/templates", json=RECEIPT, headers=tenant.headers
    )
    assert status == 201, body
    status, body = await call(
        http,
        "PUT",
        f"{worker.base_url}/api/v1/users/ana",
        json={"email": "ana@example.com", "locale": locale},
        headers=tenant.headers,
    )
    assert status == 200, body


async def delivered_as(
    http: aiohttp.ClientSession,
    worker: Worker,
    tenant: Tenant,
    redis_client: redis.Redis,
    **request: object,
) -> tuple[str, dict[str, Any]]:
    """Send the receipt to ana; its id and what the provider was given."""
    accepted = await send_notification(
        http,
        worker,
        tenant,
        channel="email",
        recipient_id="ana",
        template_id="receipt",
        payload={"name": "Ana", "order": 7},
        **request,
    )
    final = await wait_for_status(http, worker, tenant, accepted["id"])
    assert final["status"] == "delivered", final
    [record] = await sunk(redis_client, worker, notification_id=accepted["id"])
    return accepted["id"], record


async def test_a_pt_br_profile_gets_the_pt_variant_and_the_log_says_so(
    worker: Worker,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    redis_client: redis.Redis,
    database: asyncpg.Pool,
) -> None:
    await setup(http, worker, tenant, "pt-BR")
    notification_id, record = await delivered_as(http, worker, tenant, redis_client)
    assert (record["subject"], record["body"]) == ("Recibo 7", "Obrigado, Ana")
    logged = await database.fetchval(
        "SELECT locale FROM delivery_log WHERE notification_id = $1 AND status = 'delivered'",
        notification_id,
    )
    assert logged == "pt"


async def test_an_explicit_locale_wins_over_the_profiles(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, redis_client: redis.Redis
) -> None:
    await setup(http, worker, tenant, "pt-BR")
    _, record = await delivered_as(http, worker, tenant, redis_client, locale="de-AT")
    assert (record["subject"], record["body"]) == ("Beleg 7", "Danke, Ana")


async def test_an_unknown_locale_falls_back_to_the_default_and_logs_none(
    worker: Worker,
    http: aiohttp.ClientSession,
    tenant: Tenant,
    redis_client: redis.Redis,
    database: asyncpg.Pool,
) -> None:
    await setup(http, worker, tenant, "fr-CA")
    notification_id, record = await delivered_as(http, worker, tenant, redis_client)
    assert (record["subject"], record["body"]) == ("Receipt 7", "Thanks, Ana")
    logged = await database.fetch(
        "SELECT status, locale FROM delivery_log WHERE notification_id = $1", notification_id
    )
    assert ("delivered", None) in [tuple(row) for row in logged]


async def test_a_malformed_locale_is_a_422_naming_it(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    status, body = await call(
        http,
        "POST",
        f"{worker.base_url}/api/v1/notifications",
        json={"channel": "inapp", "recipient_id": "r", "payload": {"body": "b"}, "locale": "pt_BR"},
        headers=tenant.headers,
    )
    assert status == 422 and "locale" in body["error"]["details"], body


async def test_preview_renders_each_locale(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    status, created = await call(
        http, "POST", f"{worker.base_url}/api/v1/templates", json=RECEIPT, headers=tenant.headers
    )
    assert status == 201, created
    url = f"{worker.base_url}/api/v1/templates/{created['data']['id']}/preview"
    previews = {}
    for locale in ("pt-BR", "de", "fr", None):
        status, body = await call(
            http,
            "POST",
            url,
            json={"payload": {"name": "Ana", "order": 7}, "locale": locale},
            headers=tenant.headers,
        )
        assert status == 200, body
        previews[locale] = (body["data"]["locale"], body["data"]["subject"])
    assert previews == {
        "pt-BR": ("pt", "Recibo 7"),
        "de": ("de", "Beleg 7"),
        "fr": (None, "Receipt 7"),
        None: (None, "Receipt 7"),
    }


@pytest.fixture(scope="module")
def inbox_worker(worker_factory: Callable[..., Worker]) -> Worker:
    """A worker whose in-app channel delivers to the inbox (the shared one sinks every channel)."""
    return worker_factory(NOTIFYHUB_SINK_CHANNELS="email,sms,push")


async def test_an_in_app_message_without_template_takes_the_payloads_title_and_text(
    inbox_worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    worker = inbox_worker
    await send_notification(
        http,
        worker,
        tenant,
        channel="inapp",
        recipient_id="reader",
        payload={"title": "Welcome", "text": "Glad you are here"},
    )
    inbox = {**tenant.headers, "X-Recipient-ID": "reader"}

    async def received() -> list[dict[str, Any]]:
        _, body = await call(http, "GET", f"{worker.base_url}/api/v1/inbox", headers=inbox)
        return cast(list[dict[str, Any]], body["data"])

    [message] = await eventually(received, "the in-app message")
    assert (message["title"], message["body"]) == ("Welcome", "Glad you are here")
