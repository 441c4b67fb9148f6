"""A hand-written corpus of hostile input against every documented route, over HTTP and
the Kafka intake topic, on the real stack.

Asserted for every case: no 5xx, an answer within a bound, every 202 final within a bound,
and for the fields the issue names a 422 that names the field. Each test prints how many
cases it tried (``pytest -s``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from importlib import resources as package_files
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from notifyhub.db import tenants
from tests.support.api import Tenant, call, eventually, wait_for_status
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

DOCUMENT = json.loads(package_files.files("notifyhub.web").joinpath("openapi.json").read_bytes())
# No hostile request may hold its answer longer than this.
ANSWER_BOUND_SECONDS = 5.0
# Every notification accepted from the corpus reaches a final status within this.
FINAL_BOUND_SECONDS = 60.0

# Header values no UTF-8 decoder accepts: invalid bytes, overlong encodings, NUL.
HOSTILE_HEADER_VALUES = [b"\xff\xfe\xfd", b"\xc0\xaf", b"caf\xe9", b"a\x00b"]
HOSTILE_HEADERS = ["X-API-Key", "X-Admin-Token", "X-Recipient-ID", "Authorization", "Idempotency-Key"]


def _deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


# Bodies every route that takes one must refuse (or ignore) without a 5xx.
HOSTILE_BODIES: list[tuple[str, bytes]] = [
    ("nested 250 deep", _deep(250)),
    ("nested 50,000 deep", b"[" * 50_000 + b"]" * 50_000),
    ("NaN", b'{"payload": {"n": NaN}, "name": NaN}'),
    ("Infinity", b'{"payload": {"n": Infinity}, "name": -Infinity}'),
    ("a 5,000-digit integer", b'{"priority": ' + b"9" * 5000 + b"}"),
    ("NUL in a string", b'{"name": "a\\u0000b", "recipient_id": "\\u0000"}'),
    ("a lone surrogate", b'{"name": "\\ud800", "recipient_id": "\\udfff"}'),
    ("overlong UTF-8", b'{"name": "\xc0\xaf"}'),
    ("not UTF-8", b'{"name": "\xff"}'),
    ("duplicate keys", b'{"name": "a", "name": "b", "channel": "email", "channel": 1}'),
    ("a huge array", b'{"recipients": [' + b",".join([b"1"] * 200_000) + b"]}"),
    ("not an object", b"[1, 2, 3]"),
    ("empty", b""),
    ("truncated", b'{"name": '),
    ("a string", b'"hello"'),
]


def _operations() -> Iterator[tuple[str, str, str]]:
    """(method, concrete path, template path) for every documented operation."""
    for template, item in DOCUMENT["paths"].items():
        path = template
        for name in [part[1:-1] for part in template.split("/") if part.startswith("{")]:
            value = "email" if name == "channel" else "read" if name == "action" else str(uuid.uuid4())
            path = path.replace("{" + name + "}", value)
        for method in item:
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, template


async def _raw_status(worker: Worker, request: bytes) -> int:
    """Send bytes aiohttp's client would refuse to; the status line's code (0: no answer)."""
    host, port = worker.base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), ANSWER_BOUND_SECONDS)
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    finally:
        writer.close()


async def test_headers_that_are_not_utf8_never_cause_a_server_error(worker: Worker) -> None:
    answers: dict[str, int] = {}
    for method, path, _ in _operations():
        for header in HOSTILE_HEADERS:
            for value in HOSTILE_HEADER_VALUES:
                request = (
                    (
                        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                        "Content-Type: application/json\r\nConnection: close\r\n"
                    ).encode()
                    + header.encode()
                    + b": "
                    + value
                    + b"\r\n\r\n{}"
                )
                answers[f"{method} {path} {header}: {value!r}"] = await _raw_status(worker, request)
    print(f"\n{len(answers)} hostile-header cases")
    failed = {case: status for case, status in answers.items() if status >= 500 or status == 0}
    assert not failed, failed


async def test_hostile_bodies_never_cause_a_server_error_on_any_route(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    headers = {**tenant.headers, **worker.admin_headers, "Content-Type": "application/json"}
    failed: dict[str, Any] = {}
    accepted: list[str] = []
    cases = 0
    for method, path, _ in _operations():
        if method not in ("POST", "PUT", "PATCH"):
            continue
        for name, body in HOSTILE_BODIES:
            cases += 1
            async with asyncio.timeout(ANSWER_BOUND_SECONDS):
                status, answer = await call(
                    http, method, f"{worker.base_url}{path}", data=body, headers=headers
                )
            if status >= 500:
                failed[f"{method} {path} with {name}"] = (status, answer)
            if status == 202 and isinstance(answer, dict) and "id" in (answer.get("data") or {}):
                accepted.append(answer["data"]["id"])
    print(f"\n{cases} hostile-body cases, {len(accepted)} accepted")
    assert not failed, failed
    for notification_id in accepted:
        await wait_for_status(http, worker, tenant, notification_id)


NAMED_FIELD_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("year 1", {"scheduled_at": "0001-01-01T00:00:00+05:00"}, "scheduled_at"),
    ("year 9999 west of UTC", {"scheduled_at": "9999-12-31T23:59:59-05:00"}, "scheduled_at"),
    ("two addresses", {"recipient_address": "a@example.com, b@example.com"}, "recipient_address"),
    (
        "CRLF in the address",
        {"recipient_address": "a@example.com\r\nBcc: b@example.com"},
        "recipient_address",
    ),
    (
        "CRLF in the subject",
        {"payload": {"subject": "Hi\r\nBcc: x@example.com", "body": "x"}},
        "payload",
    ),
    ("NaN in the payload", {"payload": {"body": "x", "n": float("nan")}}, "payload"),
    ("a huge integer", {"payload": {"body": "x", "n": 10**100}}, "payload"),
    ("nested 40 deep", {"payload": {"body": "x", "a": json.loads(_deep(40))}}, "payload"),
    ("priority 0", {"priority": 0}, "priority"),
    ("an unknown field", {"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(
    ("case", "fields", "field"), NAMED_FIELD_CASES, ids=[c[0] for c in NAMED_FIELD_CASES]
)
async def test_a_notification_over_a_limit_gets_a_422_naming_the_field(
    worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    case: str,
    fields: dict[str, Any],
    field: str,
) -> None:
    request: dict[str, Any] = {
        "channel": "email",
        "recipient_id": "r",
        "recipient_address": "ada@example.com",
    }
    request["payload"] = {"body": "x"}
    request.update(fields)
    body = json.dumps(request, allow_nan=True)

    async def answered() -> tuple[int, Any] | None:
        # As a well-behaved client would: a 503 (the worker shedding load after the corpus
        # above) is retried.
        status, answer = await call(
            http,
            "POST",
            f"{worker.base_url}/api/v1/notifications",
            data=body,
            headers={**tenant.headers, "Content-Type": "application/json"},
        )
        return None if status == 503 else (status, answer)

    status, answer = await eventually(answered, "an answer other than 503", within=30)
    assert status == 422, answer
    named = answer["error"]["details"]
    assert any(key == field or key.startswith(f"{field}.") for key in named), answer


async def test_a_bulk_request_cannot_amplify_a_shared_payload(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    bulk = {
        "channel": "inapp",
        "payload": {"body": "x" * 60_000},
        "recipients": [{"recipient_id": f"r{i}"} for i in range(1000)],
    }
    status, answer = await call(
        http, "POST", f"{worker.base_url}/api/v1/notifications/bulk", json=bulk, headers=tenant.headers
    )
    assert status == 422, answer
    assert "recipients" in answer["error"]["details"]


async def test_faust_internal_routes_are_off(worker: Worker, http: aiohttp.ClientSession) -> None:
    for path in ("/router/", "/graph/", "/stats/", "/table/", "/performance/"):
        status, _ = await call(http, "GET", f"{worker.base_url}{path}")
        assert status == 404, path


async def test_a_slow_body_holds_only_its_own_connection(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    host, port = worker.base_url.removeprefix("http://").split(":")
    slow: list[asyncio.StreamWriter] = []
    for _ in range(20):
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v1/notifications HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
            b"Content-Type: application/json\r\nX-API-Key: " + tenant.api_key.encode() + b"\r\n\r\n{"
        )
        slow.append(writer)
    try:
        async with asyncio.timeout(ANSWER_BOUND_SECONDS):
            status, _ = await call(
                http, "GET", f"{worker.base_url}/api/v1/notifications", headers=tenant.headers
            )
        assert status == 200
    finally:
        for writer in slow:
            writer.close()


async def test_concurrent_deletes_of_one_template_answer_without_a_server_error(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    template = {
        "name": f"t-{uuid.uuid4().hex[:8]}",
        "channel": "email",
        "subject_template": "Hi",
        "body_template": "Hi",
    }
    status, created = await call(
        http, "POST", f"{worker.base_url}/api/v1/templates", json=template, headers=tenant.headers
    )
    assert status == 201, created
    url = f"{worker.base_url}/api/v1/templates/{created['data']['id']}"
    answers = await asyncio.gather(
        *(call(http, "DELETE", url, headers=tenant.headers) for _ in range(10))
    )
    statuses = sorted(status for status, _ in answers)
    assert all(status < 500 for status in statuses), statuses
    assert sum(status < 300 for status in statuses) == 1, statuses


async def test_a_tenant_quota_refuses_with_retry_after_once_used_up(
    worker: Worker, tenant: Tenant, http: aiohttp.ClientSession
) -> None:
    quota_url = f"{worker.base_url}/internal/tenants/{tenant.id}/quota"
    status, answer = await call(
        http, "PUT", quota_url, json={"notifications_per_second": 5}, headers=worker.admin_headers
    )
    assert status == 200, answer
    bulk = {
        "channel": "inapp",
        "payload": {"body": "x"},
        "recipients": [{"recipient_id": f"r{i}"} for i in range(1000)],
    }
    bulk_url = f"{worker.base_url}/api/v1/notifications/bulk"
    status, answer = await call(http, "POST", bulk_url, json=bulk, headers=tenant.headers)
    assert status == 202, answer
    # The bulk used the whole burst; at 5/s a unit comes back every 200 ms, so of twenty
    # requests sent back to back some must be refused.
    refusals = []
    for _ in range(20):
        async with http.post(
            f"{worker.base_url}/api/v1/notifications",
            json={"channel": "inapp", "recipient_id": "r", "payload": {"body": "x"}},
            headers=tenant.headers,
        ) as answer:
            if answer.status == 429:
                refusals.append((answer.headers["Retry-After"], (await answer.json())["error"]))
            else:
                assert answer.status == 202
    assert refusals, "nothing was refused"
    retry_after, problem = refusals[0]
    assert int(retry_after) >= 1
    assert "quota of 5" in problem["message"]
    status, answer = await call(http, "GET", quota_url, headers=worker.admin_headers)
    assert answer["data"]["notifications_per_second"] == 5
    assert answer["data"]["is_default"] is False


HOSTILE_INTAKE_RECORDS: list[tuple[str, Callable[[uuid.UUID], bytes]]] = [
    ("not JSON", lambda t: b"\xff\xfe not json from " + str(t).encode()),
    ("NaN", lambda t: _intake(t, b'{"body": "x", "n": NaN}')),
    ("a huge integer", lambda t: _intake(t, b'{"body": "x", "n": ' + b"9" * 5000 + b"}")),
    ("nested 250 deep", lambda t: _intake(t, b'{"body": "x", "a": ' + _deep(250) + b"}")),
    ("nested 40 deep", lambda t: _intake(t, b'{"body": "x", "a": ' + _deep(40) + b"}")),
    ("CRLF subject", lambda t: _intake(t, b'{"body": "x", "subject": "a\\r\\nBcc: b@example.com"}')),
    ("two addresses", lambda t: _intake(t, b'{"body": "x"}', b'"a@example.com, b@example.com"')),
    ("year 1", lambda t: _intake(t, b'{"body": "x"}', scheduled=b'"0001-01-01T00:00:00+05:00"')),
]


def _intake(
    tenant_id: uuid.UUID,
    payload: bytes,
    address: bytes = b'"ada@example.com"',
    scheduled: bytes = b"null",
) -> bytes:
    return (
        b'{"tenant_id": "%s", "channel": "email", "recipient_id": "r", "recipient_address": %s, '
        b'"scheduled_at": %s, "payload": %s}' % (str(tenant_id).encode(), address, scheduled, payload)
    )


async def test_hostile_intake_records_are_dead_lettered_with_a_reason_and_the_pipeline_goes_on(
    worker: Worker,
    tenant: Tenant,
    http: aiohttp.ClientSession,
    kafka_producer: AIOKafkaProducer,
    database: asyncpg.Pool,
) -> None:
    key = f"hostile-{uuid.uuid4()}".encode()
    records = [make(tenant.id) for _, make in HOSTILE_INTAKE_RECORDS]
    for record in records:
        await kafka_producer.send_and_wait(worker.topic("intake"), record, key=key)
    good_id = uuid.uuid4()
    good = {
        "id": str(good_id),
        "tenant_id": str(tenant.id),
        "channel": "inapp",
        "recipient_id": "r",
        "payload": {"body": "after"},
    }
    await kafka_producer.send_and_wait(worker.topic("intake"), json.dumps(good).encode(), key=key)
    print(f"\n{len(records)} hostile intake records")

    async def letters() -> list[asyncpg.Record] | None:
        rows = await database.fetch(
            "SELECT message, reason FROM dead_letters WHERE message = ANY($1::bytea[])", records
        )
        return rows if len(rows) == len(records) else None

    found = await eventually(letters, "a dead letter for every hostile record")
    assert all(row["reason"] for row in found)
    await wait_for_status(http, worker, tenant, str(good_id), "delivered")


async def test_another_tenant_can_neither_read_nor_change_what_a_tenant_owns(
    worker: Worker, tenant: Tenant, database: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    row = await tenants.create_tenant(database, f"intruder-{uuid.uuid4().hex[:8]}")
    _, intruder_key = await tenants.create_api_key(database, row["id"], "intruder")
    intruder = {"X-API-Key": intruder_key}
    base = worker.base_url
    template = {"name": f"t-{uuid.uuid4().hex[:8]}", "channel": "email", "body_template": "Hi"}
    _, created = await call(
        http, "POST", f"{base}/api/v1/templates", json=template, headers=tenant.headers
    )
    notification = {"channel": "inapp", "recipient_id": "victim", "payload": {"body": "secret"}}
    _, sent = await call(
        http, "POST", f"{base}/api/v1/notifications", json=notification, headers=tenant.headers
    )
    owned = [
        f"{base}/api/v1/templates/{created['data']['id']}",
        f"{base}/api/v1/templates/{created['data']['id']}/versions",
        f"{base}/api/v1/notifications/{sent['data']['id']}",
    ]
    attempts = [("GET", url, None) for url in owned] + [
        ("PUT", owned[0], {"body_template": "pwned"}),
        ("DELETE", owned[0], None),
        ("DELETE", owned[2], None),
    ]
    for method, url, body in attempts:
        status, answer = await call(http, method, url, json=body, headers=intruder)
        assert status == 404, (method, url, answer)
    _, listed = await call(http, "GET", f"{base}/api/v1/notifications", headers=intruder)
    assert listed["data"] == []
    status, still = await call(http, "GET", owned[0], headers=tenant.headers)
    assert status == 200 and still["data"]["body_template"] == "Hi"
