"""``/internal/*``: operator routes, behind ``X-Admin-Token``."""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from faust.web import View
from pydantic import StringConstraints

from notifyhub.app import app, resources
from notifyhub.db import tenants
from notifyhub.messages import Message
from notifyhub.web.auth import authenticate_admin
from notifyhub.web.inputs import parse_body, parse_uuid
from notifyhub.web.responses import ApiError, ok

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class TenantCreate(Message):
    name: Name


class ApiKeyCreate(Message):
    name: Name


@app.page("/internal/tenants")
class TenantsView(View):
    async def post(self, request: web.Request) -> web.Response:
        authenticate_admin(request)
        wanted = await parse_body(request, TenantCreate, "tenant")
        row = await tenants.create_tenant(await resources.db(), wanted.name)
        return ok(request, dict(row), status=201)


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
