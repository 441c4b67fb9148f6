"""Who is calling: tenants by ``X-API-Key`` (rate-limited), operators by ``X-Admin-Token``."""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

from aiohttp import web

from notifyhub.app import resources, settings
from notifyhub.db import tenants
from notifyhub.db.tenants import ApiKeyOwner, hash_api_key
from notifyhub.web.ratelimit import SlidingWindowLimiter
from notifyhub.web.responses import ApiError

# A key found active is trusted for this long without asking PostgreSQL again: it keeps
# the database off every request and lets intake go on (into Kafka) while PostgreSQL is
# down. The price: deactivating a key takes up to this long to reach every worker.
API_KEY_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Caller:
    tenant_id: uuid.UUID
    key_id: uuid.UUID


_owners: dict[str, tuple[float, ApiKeyOwner]] = {}
_limiter: SlidingWindowLimiter | None = None


def _api_limiter() -> SlidingWindowLimiter:
    global _limiter
    if _limiter is None:
        _limiter = SlidingWindowLimiter(
            resources.redis(),
            scope="api_key",
            limit=settings.api_rate_limit,
            window_seconds=settings.api_rate_window_seconds,
            fail_open=settings.rate_limit_fail_open,
        )
    return _limiter


async def _owner_of(raw_key: str) -> ApiKeyOwner | None:
    key_hash = hash_api_key(raw_key)
    cached = _owners.get(key_hash)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    owner = await tenants.find_api_key_owner(await resources.db(), raw_key)
    if owner is not None and owner.key_active and owner.tenant_active:
        _owners[key_hash] = (time.monotonic() + API_KEY_CACHE_SECONDS, owner)
    return owner


async def authenticate_tenant(request: web.Request) -> Caller:
    """The tenant behind the API key: 401 missing/unknown, 403 inactive, 429 over its rate."""
    raw_key = request.headers.get("X-API-Key", "")
    if not raw_key:
        raise ApiError("UNAUTHORIZED", "missing X-API-Key header")
    owner = await _owner_of(raw_key)
    if owner is None:
        raise ApiError("UNAUTHORIZED", "invalid API key")
    if not owner.key_active:
        raise ApiError("FORBIDDEN", "this API key is inactive")
    if not owner.tenant_active:
        raise ApiError("FORBIDDEN", "this tenant is inactive")
    decision = await _api_limiter().check(str(owner.key_id))
    if not decision.allowed:
        if decision.degraded:
            raise ApiError(
                "SERVICE_UNAVAILABLE",
                "rate limiting is unavailable; retry later",
                headers={"Retry-After": "5"},
            )
        raise ApiError(
            "RATE_LIMITED",
            f"over {settings.api_rate_limit} requests per {settings.api_rate_window_seconds:g} s "
            "for this API key",
            headers={"Retry-After": str(decision.retry_after_seconds)},
        )
    return Caller(owner.tenant_id, owner.key_id)


def authenticate_admin(request: web.Request) -> None:
    """``X-Admin-Token``: 401 when missing, 403 when wrong (compared in constant time)."""
    given = request.headers.get("X-Admin-Token", "")
    if not given:
        raise ApiError("UNAUTHORIZED", "missing X-Admin-Token header")
    expected = settings.admin_token.get_secret_value()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError("FORBIDDEN", "invalid admin token")
