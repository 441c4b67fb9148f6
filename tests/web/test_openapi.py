"""The OpenAPI document: served as committed, valid, complete, and true to the real answers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import asyncpg
import hypothesis
import pytest
import requests
import schemathesis
from openapi_spec_validator import validate
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from notifyhub.db import notifications, tenants
from notifyhub.model.channels import Channel
from notifyhub.model.messages import IntakeMessage
from tests.support.api import Tenant
from tests.support.openapi import (
    DOCUMENT,
    DOCUMENT_BYTES,
    FUZZ_CHECKS,
    FUZZ_REQUEST_TIMEOUT_SECONDS,
    UNTHROTTLED_RATE_LIMIT,
    Api,
    server_traceback,
)
from tests.support.workers import Worker

pytestmark = pytest.mark.stack

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Fuzzing: a bounded, reproducible run (the same examples every time). 150 examples per
# operation and mode is about 13,000 requests, about 3 minutes on a 2-core machine.
FUZZ_EXAMPLES_PER_OPERATION = 150
SMALL_RATE_LIMIT = 2


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)


def test_every_route_of_the_server_is_documented_and_nothing_else() -> None:
    from notifyhub.app import app
    from notifyhub.web import views

    served = {
        (path, method.lower())
        for path, view in app.web.views.items()
        if type(view).__module__.startswith(views.__package__ + ".")
        for method in view.get_methods() - {"HEAD"}
    }
    documented = {
        (path, method)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert served == documented


async def test_the_worker_serves_the_committed_document(
    worker: Worker, http: aiohttp.ClientSession
) -> None:
    async with http.get(f"{worker.base_url}/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.read() == DOCUMENT_BYTES


async def test_real_answers_match_the_document(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    api = Api(http, worker.base_url, tenant.headers)
    body = await api(
        "POST",
        "/api/v1/notifications",
        202,
        json={
            "channel": "email",
            "recipient_id": "ada",
            "recipient_address": "ada@example.com",
            "payload": {"subject": "Hi", "body": "Hello"},
            "idempotency_key": "order-1",
        },
    )
    sent = body["data"]["id"]
    await api("GET", "/api/v1/notifications/{notification_id}", 200, {"notification_id": sent})
    await api(
        "GET", "/api/v1/notifications", 200, params={"channel": "email", "per_page": "5", "page": "1"}
    )
    await api("GET", "/api/v1/notifications", 422, params={"status": "lost"})
    await api("POST", "/api/v1/notifications", 422, json={"channel": "push", "recipient_id": "ada"})
    await api("POST", "/api/v1/notifications", 422, data=b"{nope")
    await api("GET", "/api/v1/notifications/{notification_id}", 422, {"notification_id": "nope"})
    await api("GET", "/api/v1/notifications/{notification_id}", 404, {"notification_id": uuid.uuid4()})
    await api(
        "POST",
        "/api/v1/notifications",
        422,
        json={"channel": "push", "recipient_id": "ada", "payload": {"body": "x" * 1024 * 1024}},
    )
    await api(
        "POST",
        "/api/v1/notifications/bulk",
        202,
        json={
            "channel": "email",
            "payload": {"body": "Hello"},
            "recipients": [
                {"recipient_id": "ada", "recipient_address": "ada@example.com"},
                {"recipient_id": "bob"},
            ],
        },
    )

    # A notification that only PostgreSQL knows stays cancellable: the pipeline never sees it.
    parked = IntakeMessage(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        channel=Channel.PUSH,
        recipient_id="ada",
        payload={"body": "x"},
    )
    await notifications.insert_pending(database, [parked])
    params = {"notification_id": parked.id}
    await api("DELETE", "/api/v1/notifications/{notification_id}", 200, params)
    await api("DELETE", "/api/v1/notifications/{notification_id}", 404, params)

    template = {
        "name": "greeting",
        "channel": "email",
        "subject_template": "Hi {{ name }}",
        "body_template": "Hello {{ name }}",
        "metadata": {"team": "growth"},
    }
    body = await api("POST", "/api/v1/templates", 201, json=template)
    params = {"template_id": body["data"]["id"]}
    await api("POST", "/api/v1/templates", 409, json=template)
    await api("POST", "/api/v1/templates", 422, json={**template, "body_template": "{{ oops"})
    await api("GET", "/api/v1/templates", 200, params={"channel": "email"})
    await api("GET", "/api/v1/templates/{template_id}", 200, params)
    await api("PUT", "/api/v1/templates/{template_id}", 200, params, json={"subject_template": None})
    await api("GET", "/api/v1/templates/{template_id}/versions", 200, params)
    preview = "/api/v1/templates/{template_id}/preview"
    await api("POST", preview, 200, params, json={"payload": {"name": "Ada"}})
    await api("POST", preview, 422, params, json={"payload": {}})
    await api("DELETE", "/api/v1/templates/{template_id}", 200, params)
    await api("GET", "/api/v1/templates/{template_id}", 404, params)

    user = {"user_id": "ada"}
    preference = "/api/v1/users/{user_id}/preferences/{channel}"
    sms = {**user, "channel": "sms"}
    await api(
        "PUT",
        preference,
        200,
        sms,
        json={"quiet_hours_start": "22:00", "quiet_hours_end": "07:00", "timezone": "Europe/Paris"},
    )
    await api("PUT", preference, 422, sms, json={"timezone": "Mars/Olympus"})
    await api("GET", "/api/v1/users/{user_id}/preferences", 200, user)
    await api("DELETE", preference, 204, sms)
    await api("DELETE", preference, 204, sms)

    device = {"token": "device-token-1"}
    await api("POST", "/api/v1/device-tokens", 201, json={"user_id": "ada", "platform": "ios", **device})
    await api("DELETE", "/api/v1/device-tokens/{token}", 204, device)
    await api("DELETE", "/api/v1/device-tokens/{token}", 204, device)

    await api("PUT", "/api/v1/users/{user_id}", 200, user, json={"email": "ada@example.com"})
    await api("GET", "/api/v1/users/{user_id}", 200, user)
    await api("PUT", "/api/v1/users/{user_id}", 422, user, json={"phone": "555"})
    await api("DELETE", "/api/v1/users/{user_id}", 204, user)
    await api("GET", "/api/v1/users/{user_id}", 404, user)

    await api("GET", "/api/v1/notifications", 401, headers={})
    await api("GET", "/api/v1/notifications", 401, headers={"X-API-Key": "0" * 64})


async def test_admin_answers_match_the_document(worker: Worker, http: aiohttp.ClientSession) -> None:
    api = Api(http, worker.base_url, worker.admin_headers)
    body = await api("POST", "/internal/tenants", 201, json={"name": "Acme"})
    keys = "/internal/tenants/{tenant_id}/api-keys"
    await api("POST", keys, 201, {"tenant_id": body["data"]["id"]}, json={"name": "backend"})
    await api("POST", keys, 404, {"tenant_id": uuid.uuid4()}, json={"name": "backend"})
    await api("POST", keys, 422, {"tenant_id": "nope"}, json={"name": "backend"})
    await api("POST", "/internal/tenants", 422, json={"name": " "})
    await api("POST", "/internal/tenants", 401, headers={}, json={"name": "Acme"})
    await api("POST", "/internal/tenants", 403, headers={"X-Admin-Token": "wrong"}, json={"name": "A"})


async def test_probe_answers_match_the_document(worker: Worker, http: aiohttp.ClientSession) -> None:
    api = Api(http, worker.base_url, {})
    for path in ("/health", "/livez", "/readyz", "/openapi.json"):
        await api("GET", path, 200)


async def test_an_inactive_key_matches_the_document(
    worker: Worker, http: aiohttp.ClientSession, tenant: Tenant, database: asyncpg.Pool
) -> None:
    # A key the worker has not seen yet: a key seen active is trusted for a while (auth.py).
    key_row, inactive_key = await tenants.create_api_key(database, tenant.id, "retired")
    await database.execute("UPDATE api_keys SET is_active = false WHERE id = $1", key_row["id"])
    api = Api(http, worker.base_url, {"X-API-Key": inactive_key})
    await api("GET", "/api/v1/templates", 403)


@pytest.fixture(scope="module")
def limited_worker(worker_factory: Callable[..., Worker]) -> Worker:
    return worker_factory(NOTIFYHUB_API_RATE_LIMIT=str(SMALL_RATE_LIMIT))


async def test_the_rate_limit_matches_the_document(
    limited_worker: Worker, http: aiohttp.ClientSession, tenant: Tenant
) -> None:
    api = Api(http, limited_worker.base_url, tenant.headers)
    for _ in range(SMALL_RATE_LIMIT):
        await api("GET", "/api/v1/templates", 200, params={"per_page": "1"})
    await api("GET", "/api/v1/templates", 429, params={"per_page": "1"})


@pytest.fixture(scope="module")
def fuzzed_worker(worker_factory: Callable[..., Worker]) -> Worker:
    return worker_factory(NOTIFYHUB_API_RATE_LIMIT=UNTHROTTLED_RATE_LIMIT)


def _fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: schemathesis.GenerationMode,
    worker: Worker,
    send: Callable[[schemathesis.Case[Any]], schemathesis.Response],
    failures: dict[tuple[str, str], str],
) -> None:
    """Send generated requests to one operation; report each kind of failure once."""
    checks = [getattr(schemathesis.checks, name) for name in FUZZ_CHECKS]

    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        # Failures are reported, not raised, so there is nothing for Hypothesis to shrink.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def exchange(case: schemathesis.Case[Any]) -> None:
        response = send(case)
        try:
            case.validate_response(response, checks=checks)
        except FailureGroup as exc:
            for failure in exc.exceptions:
                kind = (operation.label, failure.title)
                if kind not in failures:
                    traceback = server_traceback(worker, response) if response.status_code >= 500 else ""
                    failures[kind] = f"{operation.label} ({mode.value}): {exc}{traceback}"

    exchange()


def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(
    fuzzed_worker: Worker, tenant: Tenant
) -> None:
    """Schemathesis sends generated valid and invalid requests to every operation.

    Every kind of failure is reported (not only the first): how to reproduce it with curl,
    and for a server error the worker's traceback.
    """
    schema = schemathesis.openapi.from_url(f"{fuzzed_worker.base_url}/openapi.json")
    headers = {**tenant.headers, **fuzzed_worker.admin_headers}
    failures: dict[tuple[str, str], str] = {}
    with requests.Session() as session:

        def send(case: schemathesis.Case[Any]) -> schemathesis.Response:
            return case.call(
                base_url=fuzzed_worker.base_url,
                session=session,
                headers=headers,
                timeout=FUZZ_REQUEST_TIMEOUT_SECONDS,
            )

        # Schemathesis leaves out the operation that serves the document it was loaded from.
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), f"an operation of the document did not load: {result.err()}"
            operation = result.ok()
            _fuzz(operation, schemathesis.GenerationMode.POSITIVE, fuzzed_worker, send, failures)
            # Only what a client sends can be made invalid (for /health there is nothing).
            if operation.body or operation.path_parameters or operation.query:
                _fuzz(operation, schemathesis.GenerationMode.NEGATIVE, fuzzed_worker, send, failures)

    assert not failures, "\n\n".join(failures.values())
