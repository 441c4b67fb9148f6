"""``/internal/*``: operator routes, behind ``X-Admin-Token``."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from faust.web import View
from pydantic import StrictBool, StringConstraints

from notifyhub.app import app, resources
from notifyhub.db import tenants
from notifyhub.model.messages import Message
from notifyhub.web.auth import authenticate_admin, mark_api_key_revoked, mark_tenant_deactivated
from notifyhub.web.inputs import parse_body, parse_uuid
from notifyhub.web.responses import ApiError, ok

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class TenantCreate(Message):
    name: Name


class TenantUpdate(Message):
    is_active: StrictBool


class ApiKeyCreate(Message):
    name: Name


@app.page("/internal/tenants")
class TenantsView(View):
    async def post(self, request: web.Request) -> web.Response:
        authenticate_admin(request)
        wanted = await parse_body(request, TenantCreate, "tenant")
        row = await tenants.create_tenant(await resources.db(), wanted.name)
        return ok(request, dict(row), status=201)


@app.page("/internal/tenants/{tenant_id}")
class TenantView(View):
    async def patch(self, request: web.Request, tenant_id: str) -> web.Response:
        """Deactivate a tenant (every key of it is refused at once, on every worker) or
        activate it again."""
        authenticate_admin(request)
        tenant = parse_uuid(tenant_id, "tenant_id")
        wanted = await parse_body(request, TenantUpdate, "tenant")
        row = await tenants.set_tenant_active(await resources.db(), tenant, wanted.is_active)
        if row is None:
            raise ApiError("NOT_FOUND", "tenant not found")
        # PostgreSQL first, for every lookup to come; then the marker that makes the workers
        # drop what they cached. Should Redis fail, the answer is 503 and a retry finishes it.
        await mark_tenant_deactivated(tenant, not wanted.is_active)
        return ok(request, dict(row))


@app.page("/internal/tenants/{tenant_id}/api-keys")
class ApiKeysView(View):
    async def post(self, request: web.Request, tenant_id: str) -> web.Response:
        authenticate_admin(request)
        tenant = parse_uuid(tenant_id, "tenant_id")
        wanted = await parse_body(request, ApiKeyCreate, "API key")
        pool = await resources.db()
        if not await tenants.tenant_exists(pool, tenant):
            raise ApiError("NOT_FOUND", "tenant not found")
        row, raw_key = await tenants.create_api_key(pool, tenant, wanted.name)
        # The raw key leaves the server this once; only its hash is stored.
        return ok(
            request,
            {
                "id": row["id"],
                "tenant_id": row["tenant_id"],
                "name": row["name"],
                "api_key": raw_key,
                "created_at": row["created_at"],
            },
            status=201,
        )


@app.page("/internal/tenants/{tenant_id}/api-keys/{key_id}/revoke")
class ApiKeyRevocationView(View):
    async def post(self, request: web.Request, tenant_id: str, key_id: str) -> web.Response:
        """Revoke a key for good: refused at once, on every worker."""
        authenticate_admin(request)
        tenant = parse_uuid(tenant_id, "tenant_id")
        key = parse_uuid(key_id, "key_id")
        row = await tenants.revoke_api_key(await resources.db(), tenant, key)
        if row is None:
            raise ApiError("NOT_FOUND", "API key not found")
        # The same order as for a tenant: PostgreSQL, then the marker (503 and retry on failure).
        await mark_api_key_revoked(key)
        return ok(request, dict(row))
