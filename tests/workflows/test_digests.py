"""Digests against the real stack: items collected per recipient, channel and key while a
window is open, then sent as one notification; the items become ``digested``."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as redis

from tests.support.api import Tenant, activity_feed, call, eventually, send_notification, wait_for_status
from tests.support.workers import Worker
from tests.support.workflows import reaches, sunk

pytestmark = pytest.mark.stack

WINDOW_SECONDS = 3


def digested_item(recipient: str, text: str, key: str = "comments", **rule: object) -> dict[str, Any]:
    return {
        "channel": "email",
        "recipient_id": recipient,
        "recipient_address": f"{recipient}@example.com",
        "payload": {"subject": "New comment", "body": text},
        "digest": {"key": key, "window_seconds": WINDOW_SECONDS, **rule},
    }


async def digests_of(database: asyncpg.Pool, tenant: Tenant, recipient: str) -> list[asyncpg.Record]:
    return await database.fetch(
        "SELECT id, status, payload, type FROM notifications "
        "WHERE tenant_id = $1 AND recipient_id = $2 AND type LIKE 'digest:%' ORDER BY created_at",
        tenant.id,
        recipient,
    )


async def test_items_within_the_window_are_sent_as_one_digest(
    workflow_worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    database: asyncpg.Pool,
    redis_client: redis.Redis,
) -> None:
    recipient = f"ada-{uuid.uuid4().hex[:6]}"
    items = [
        await send_notification(
            http, workflow_worker, tenant, **digested_item(recipient, f"comment {n}")
        )
        for n in range(3)
    ]
    for item in items:
        found = await wait_for_status(http, workflow_worker, tenant, item["id"], "digested")
        assert found["status_reason"].startswith("joined digest ")
        assert found["digest"]["key"] == "comments"
    digest_ids = {
        (await wait_for_status(http, workflow_worker, tenant, i["id"], "digested"))[
            "status_reason"
        ].split()[-1]
        for i in items
    }
    assert len(digest_ids) == 1
    [digest_id] = digest_ids
    digest = await reaches(http, workflow_worker, tenant, digest_id, "delivered")
    assert digest["type"] == "digest:comments"
    assert digest["payload"]["count"] == 3
    assert [i["id"] for i in digest["payload"]["items"]] == [i["id"] for i in items]
    [record] = [
        r
        for r in await sunk(redis_client, workflow_worker, tenant.id)
        if r["notification_id"] == digest_id
    ]
    assert record["subject"] == "New comment (+2 more)"
    assert record["body"] == "comment 0\ncomment 1\ncomment 2"
    # Only the digest was sent: none of its items.
    sent = {r["notification_id"] for r in await sunk(redis_client, workflow_worker, tenant.id)}
    assert sent.isdisjoint(i["id"] for i in items)
    # The item's activity feed names the digest.
    feed = await activity_feed(http, workflow_worker, tenant, items[0]["id"])
    assert [e["status"] for e in feed][-1] == "digested"
    assert digest_id in feed[-1]["reason"]


async def test_a_digest_is_rendered_with_its_template_from_the_items(
    workflow_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, redis_client: redis.Redis
) -> None:
    status, body = await call(
        http,
        "POST",
        f"{workflow_worker.base_url}/api/v1/templates",
        json={
            "name": f"digest-{uuid.uuid4().hex[:6]}",
            "channel": "email",
            "subject_template": "{{ count }} new comments",
            "body_template": "{% for item in items %}{{ item.payload.author }};{% endfor %}",
        },
        headers=tenant.headers,
    )
    assert status == 201, body
    template = body["data"]
    recipient = f"bo-{uuid.uuid4().hex[:6]}"
    first = await send_notification(
        http,
        workflow_worker,
        tenant,
        **{
            **digested_item(recipient, "x", template_id=template["name"]),
            "payload": {"author": "ann", "body": "x"},
        },
    )
    await send_notification(
        http,
        workflow_worker,
        tenant,
        **{
            **digested_item(recipient, "y", template_id=template["id"]),
            "payload": {"author": "bob", "body": "y"},
        },
    )
    found = await wait_for_status(http, workflow_worker, tenant, first["id"], "digested")
    digest_id = found["status_reason"].split()[-1]
    await reaches(http, workflow_worker, tenant, digest_id, "delivered")
    [record] = [
        r
        for r in await sunk(redis_client, workflow_worker, tenant.id)
        if r["notification_id"] == digest_id
    ]
    assert record["subject"] == "2 new comments"
    assert record["body"] == "ann;bob;"


async def test_max_items_sends_the_digest_early_and_the_next_item_opens_a_window(
    workflow_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    recipient = f"cy-{uuid.uuid4().hex[:6]}"
    rule = {"window_seconds": 600, "max_items": 2}
    items = [
        await send_notification(
            http,
            workflow_worker,
            tenant,
            **{**digested_item(recipient, f"c{n}"), "digest": {"key": "k", **rule}},
        )
        for n in range(3)
    ]
    # Far before the 600 s window: the full one goes out on the next tick.
    full = await eventually(
        lambda: _delivered_digests(database, tenant, recipient),
        "the full digest to be delivered",
        within=30,
    )
    assert [len(d["payload_items"]) for d in full] == [2]
    reasons = [
        (await wait_for_status(http, workflow_worker, tenant, i["id"], "digested"))["status_reason"]
        for i in items
    ]
    assert reasons[0] == reasons[1] != reasons[2]


async def _delivered_digests(
    database: asyncpg.Pool, tenant: Tenant, recipient: str
) -> list[dict[str, Any]]:
    rows = await digests_of(database, tenant, recipient)
    return [
        {"id": r["id"], "payload_items": json.loads(r["payload"])["items"]}
        for r in rows
        if r["status"] == "delivered"
    ]


async def test_concurrent_items_of_many_recipients_make_one_digest_each(
    workflow_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession, database: asyncpg.Pool
) -> None:
    """Twenty requests at once per recipient, from several clients: one digest per window,
    holding every item exactly once."""
    recipients = [f"many-{uuid.uuid4().hex[:6]}-{n}" for n in range(5)]
    requests = [digested_item(r, f"{r} item {n}") for r in recipients for n in range(20)]
    accepted = await asyncio.gather(
        *(send_notification(http, workflow_worker, tenant, **request) for request in requests)
    )
    ids = {a["id"] for a in accepted}

    async def all_sent() -> list[asyncpg.Record] | None:
        rows = await database.fetch(
            "SELECT recipient_id, status, payload FROM notifications "
            "WHERE tenant_id = $1 AND recipient_id = ANY($2::text[]) AND type = 'digest:comments'",
            tenant.id,
            recipients,
        )
        collected = [i["id"] for r in rows for i in json.loads(r["payload"])["items"]]
        done = len(collected) == len(ids) and all(r["status"] == "delivered" for r in rows)
        return rows if done else None

    rows = await eventually(all_sent, "every item to be in a delivered digest", within=60)
    collected = [i["id"] for r in rows for i in json.loads(r["payload"])["items"]]
    assert sorted(collected) == sorted(ids)  # each item once, none lost
    # Sent within one window each (the requests took less than the window).
    assert sorted(r["recipient_id"] for r in rows) == sorted(recipients)


async def test_a_digest_obeys_the_recipient_s_preference(
    workflow_worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    recipient = f"off-{uuid.uuid4().hex[:6]}"
    status, body = await call(
        http,
        "PUT",
        f"{workflow_worker.base_url}/api/v1/users/{recipient}/preferences/email",
        json={"enabled": False},
        headers=tenant.headers,
    )
    assert status == 200, body
    item = await send_notification(http, workflow_worker, tenant, **digested_item(recipient, "z"))
    found = await wait_for_status(http, workflow_worker, tenant, item["id"], "digested")
    digest = await reaches(http, workflow_worker, tenant, found["status_reason"].split()[-1], "dropped")
    assert "turned the email channel off" in digest["status_reason"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"digest": {"key": "k", "window_seconds": 0}}, "digest.window_seconds"),
        ({"digest": {"key": "", "window_seconds": 5}}, "digest.key"),
        ({"digest": {"key": "k", "window_seconds": 5, "max_items": 1}}, "digest.max_items"),
        ({"digest": {"key": "k", "window_seconds": 5, "template_id": "no-such"}}, "digest.template_id"),
    ],
)
async def test_a_bad_digest_rule_is_a_422_naming_the_field(
    workflow_worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    change: dict[str, Any],
    field: str,
) -> None:
    request = {**digested_item("someone", "x"), **change}
    status, body = await call(
        http,
        "POST",
        f"{workflow_worker.base_url}/api/v1/notifications",
        json=request,
        headers=tenant.headers,
    )
    assert status == 422, body
    assert field in body["error"]["details"], body
