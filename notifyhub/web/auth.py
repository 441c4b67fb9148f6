"""Who is calling: tenants by ``X-API-Key``."""

from __future__ import annotations

import uuid

import asyncpg
from aiohttp import web

from notifyhub.db import tenants
from notifyhub.web.responses import ApiError


async def authenticate_tenant(request: web.Request, pool: asyncpg.Pool) -> uuid.UUID:
    """The tenant behind the request's API key: 401 when missing or unknown, 403 when inactive."""
    raw_key = request.headers.get("X-API-Key", "")
    if not raw_key:
        raise ApiError("UNAUTHORIZED", "missing X-API-Key header")
    owner = await tenants.find_api_key_owner(pool, raw_key)
    if owner is None:
        raise ApiError("UNAUTHORIZED", "invalid API key")
    if not owner.key_active:
        raise ApiError("FORBIDDEN", "this API key is inactive")
    if not owner.tenant_active:
        raise ApiError("FORBIDDEN", "this tenant is inactive")
    return owner.tenant_id
