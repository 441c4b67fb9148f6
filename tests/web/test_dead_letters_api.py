"""The admin DLQ API: scoping, paging, validation, and replaying a letter that is not a send."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis

from notifyhub.db import dead_letters
from notifyhub.model.messages import DeadLetter
from tests.support.api import Tenant, call, eventually
from tests.support.workers import Worker

pytestmark = pytest.mark.stack


def intake_letter(worker: Worker, tenant: Tenant, recipient: str) -> DeadLetter:
    """A dead letter holding a valid intake message, as if intake had once refused it."""
    message = {
        "v": 1,
        "id": str(uuid.uuid4()),
        "tenant_id": str(tenant.id),
        "channel": "inapp",
        "recipient_id": recipient,
        "payload": {"body": "second chance"},
    }
    return DeadLetter(
        source_topic=worker.topic("intake"),
        reason="a bug that has since been fixed",
        tenant_id=tenant.id,
        message_key=recipient.encode(),
        message=json.dumps(message).encode(),
    )


async def test_letters_are_listed_per_tenant_newest_first_and_paged(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    letters = [intake_letter(worker, tenant, f"r{n}") for n in range(3)]
    await dead_letters.insert_many(database, letters)
    headers = {**worker.admin_headers, "X-Tenant-ID": str(tenant.id)}
    status, body = await call(
        http, "GET", f"{worker.base_url}/internal/dlq", params={"limit": "2"}, headers=headers
    )
    assert status == 200
    assert body["meta"]["total"] == 3 and body["meta"]["limit"] == 2
    assert len(body["data"]) == 2
    assert body["data"][0]["message"]["channel"] == "inapp"
    status, body = await call(
        http, "GET", f"{worker.base_url}/internal/dlq", params={"offset": "2"}, headers=headers
    )
    assert len(body["data"]) == 1
    # Another tenant sees none of them.
    other = {**worker.admin_headers, "X-Tenant-ID": str(uuid.uuid4())}
    status, body = await call(http, "GET", f"{worker.base_url}/internal/dlq", headers=other)
    assert (status, body["data"]) == (200, [])


@pytest.mark.parametrize(
    ("query", "headers", "field"),
    [
        ({}, {}, "X-Tenant-ID"),
        ({}, {"X-Tenant-ID": "not-a-uuid"}, "X-Tenant-ID"),
        ({"limit": "501"}, None, "limit"),
        ({"offset": "-1"}, None, "offset"),
        ({"channel": "fax"}, None, "channel"),
    ],
)
async def test_bad_queries_are_a_422_naming_the_field(
    worker: Worker,
    http: aiohttp.ClientSession,
    query: dict[str, Any],
    headers: dict[str, Any] | None,
    field: str,
) -> None:
    sent = {
        **worker.admin_headers,
        **(headers if headers is not None else {"X-Tenant-ID": str(uuid.uuid4())}),
    }
    status, body = await call(http, "GET", f"{worker.base_url}/internal/dlq", params=query, headers=sent)
    assert status == 422
    assert field in body["error"]["details"]


async def test_the_dlq_needs_the_admin_token(worker: Worker, http: aiohttp.ClientSession) -> None:
    status, _ = await call(
        http, "GET", f"{worker.base_url}/internal/dlq", headers={"X-Tenant-ID": str(uuid.uuid4())}
    )
    assert status == 401


async def test_replaying_an_intake_letter_delivers_its_notification(
    worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    database: asyncpg.Pool,
    redis_client: redis.Redis,
) -> None:
    letter = intake_letter(worker, tenant, "second-chance")
    await dead_letters.insert_many(database, [letter])
    headers = {**worker.admin_headers, "X-Tenant-ID": str(tenant.id)}
    status, body = await call(
        http, "POST", f"{worker.base_url}/internal/dlq/{letter.id}/replay", headers=headers
    )
    assert status == 200, body
    assert body["data"]["dead_letter"]["replayed_at"] is not None

    async def sunk() -> list[dict[str, Any]]:
        records = [json.loads(r) for r in await redis_client.lrange(worker.sink_key, 0, -1)]
        return [
            r
            for r in records
            if r["recipient_id"] == "second-chance" and r["tenant_id"] == str(tenant.id)
        ]

    [record] = await eventually(sunk, "the replayed notification to be sent")
    assert record["body"] == "second chance"
    status, _ = await call(
        http, "POST", f"{worker.base_url}/internal/dlq/{uuid.uuid4()}/replay", headers=headers
    )
    assert status == 404


@pytest.mark.parametrize(
    "message",
    [
        b"[" * 250 + b"]" * 250,
        b'{"a": NaN, "b": Infinity}',
        b'{"big": 1e999}',
        b'{"n": 1' + b"0" * 30 + b"}",
        b'{"n": 1' + b"0" * 5000 + b"}",
        b'{"s": "\\ud800"}',
    ],
    ids=[
        "nested-250-deep",
        "nan-infinity",
        "float-overflow",
        "int-beyond-64-bits",
        "int-5000-digits",
        "lone-surrogate",
    ],
)
async def test_any_message_is_shown_as_its_bytes_when_not_as_json(
    worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    database: asyncpg.Pool,
    message: bytes,
) -> None:
    letter = DeadLetter(
        source_topic=worker.topic("enrich"), reason="poison", tenant_id=tenant.id, message=message
    )
    await dead_letters.insert_many(database, [letter])
    headers = {**worker.admin_headers, "X-Tenant-ID": str(tenant.id)}
    status, listed = await call(http, "GET", f"{worker.base_url}/internal/dlq", headers=headers)
    assert status == 200, listed
    status, one = await call(http, "GET", f"{worker.base_url}/internal/dlq/{letter.id}", headers=headers)
    assert status == 200, one
    for shown in (listed["data"][0], one["data"]):
        assert shown["message"] is None
        assert base64.b64decode(shown["message_base64"]) == message
