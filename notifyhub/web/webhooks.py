"""``/api/v1/webhooks``: a tenant's webhook endpoints, and the log of their deliveries.

The secret is write-only: stored encrypted, never returned. A URL must be a plain http(s)
URL (no user name or password, a valid host and port) whose host is and resolves to
public addresses only, unless the operator allowed the host or its network
(``NOTIFYHUB_WEBHOOK_ALLOWED_HOSTS``; ``notifyhub.webhooks.addresses`` says what public
means). A tenant has at most ``MAX_ENDPOINTS_PER_TENANT`` endpoints, listed a page at a time.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from faust.web import View
from pydantic import AfterValidator, Field, StringConstraints

from notifyhub.app import app, resources, settings
from notifyhub.db import webhooks as webhooks_db
from notifyhub.model.messages import Message
from notifyhub.web.auth import authenticate_tenant
from notifyhub.web.inputs import page_of, parse_body, parse_uuid
from notifyhub.web.responses import ApiError, ok
from notifyhub.webhooks import endpoint_secrets
from notifyhub.webhooks.addresses import (
    MAX_URL_LENGTH,
    AddressPolicy,
    AddressRefused,
    InvalidUrl,
    parse_url,
)
from notifyhub.webhooks.events import EVENTS

MAX_ATTEMPTS_LISTED = 100
# Every endpoint subscribed to an event is one more request per event: the cap bounds
# what one tenant can make NotifyHub send.
MAX_ENDPOINTS_PER_TENANT = 50

policy = AddressPolicy(settings.webhook_allowed_hosts)


def _known_event(name: str) -> str:
    if name not in EVENTS:
        raise ValueError(f"unknown event; one of {', '.join(sorted(EVENTS))}")
    return name


def _valid_url(raw: str) -> str:
    parse_url(raw)
    return raw


Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=8, max_length=MAX_URL_LENGTH),
    AfterValidator(_valid_url),
]
Secret = Annotated[str, StringConstraints(min_length=16, max_length=256)]
Event = Annotated[str, AfterValidator(_known_event)]


class EndpointCreate(Message):
    url: Url
    secret: Secret
    events: list[Event] = Field(min_length=1, max_length=len(EVENTS))


class EndpointUpdate(Message):
    url: Url | None = None
    secret: Secret | None = None
    events: list[Event] | None = Field(default=None, min_length=1, max_length=len(EVENTS))
    is_active: bool | None = None


async def _checked_url(url: str) -> str:
    """The URL, once its host resolves to addresses webhooks may reach (a 422 otherwise)."""
    try:
        await policy.check_resolved(parse_url(url))
    except AddressRefused as exc:
        raise ApiError(
            "VALIDATION_ERROR", "invalid webhook endpoint", {"url": f"refused: {exc}"}
        ) from None
    except InvalidUrl as exc:
        raise ApiError("VALIDATION_ERROR", "invalid webhook endpoint", {"url": str(exc)}) from None
    return url


def _encrypted(secret: str) -> bytes:
    return endpoint_secrets.encrypt(settings.webhook_secret_key.get_secret_value(), secret)


@app.page("/api/v1/webhooks")
class WebhooksView(View):
    async def post(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, EndpointCreate, "webhook endpoint")
        url = await _checked_url(wanted.url)
        row = await webhooks_db.create_endpoint(
            await resources.db(),
            caller.tenant_id,
            url,
            _encrypted(wanted.secret),
            wanted.events,
            limit=MAX_ENDPOINTS_PER_TENANT,
        )
        if row is None:
            raise ApiError(
                "CONFLICT",
                f"a tenant may have at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints; "
                "delete one to add another",
            )
        return ok(request, dict(row), status=201)

    async def get(self, request: web.Request) -> web.Response:
        caller = await authenticate_tenant(request)
        page = page_of(request)
        rows, total = await webhooks_db.page(
            await resources.db(), caller.tenant_id, page.per_page, page.offset
        )
        return ok(request, [dict(row) for row in rows], **page.meta(total))


@app.page("/api/v1/webhooks/{endpoint_id}")
class WebhookView(View):
    async def get(self, request: web.Request, endpoint_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        row = await webhooks_db.endpoint(await resources.db(), caller.tenant_id, parse_uuid(endpoint_id))
        if row is None:
            raise ApiError("NOT_FOUND", "webhook endpoint not found")
        return ok(request, dict(row))

    async def put(self, request: web.Request, endpoint_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        wanted = await parse_body(request, EndpointUpdate, "webhook endpoint")
        changes: dict[str, Any] = {}
        if wanted.url is not None:
            changes["url"] = await _checked_url(wanted.url)
        if wanted.secret is not None:
            changes["secret_ciphertext"] = _encrypted(wanted.secret)
        if wanted.events is not None:
            changes["events"] = sorted(set(wanted.events))
        if wanted.is_active is not None:
            changes["is_active"] = wanted.is_active
        row = await webhooks_db.update_endpoint(
            await resources.db(), caller.tenant_id, parse_uuid(endpoint_id), changes
        )
        if row is None:
            raise ApiError("NOT_FOUND", "webhook endpoint not found")
        return ok(request, dict(row))

    async def delete(self, request: web.Request, endpoint_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        if not await webhooks_db.delete_endpoint(
            await resources.db(), caller.tenant_id, parse_uuid(endpoint_id)
        ):
            raise ApiError("NOT_FOUND", "webhook endpoint not found")
        return web.Response(status=204)


@app.page("/api/v1/webhooks/{endpoint_id}/deliveries")
class WebhookDeliveriesView(View):
    async def get(self, request: web.Request, endpoint_id: str) -> web.Response:
        caller = await authenticate_tenant(request)
        pool = await resources.db()
        endpoint = parse_uuid(endpoint_id)
        if await webhooks_db.endpoint(pool, caller.tenant_id, endpoint) is None:
            raise ApiError("NOT_FOUND", "webhook endpoint not found")
        rows = await webhooks_db.attempts_of(pool, caller.tenant_id, endpoint, MAX_ATTEMPTS_LISTED)
        return ok(request, [dict(row) for row in rows])
