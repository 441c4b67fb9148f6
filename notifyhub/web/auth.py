"""Who is calling: tenants by ``X-API-Key`` (rate-limited), operators by ``X-Admin-Token``.

Revocation takes effect at once on every worker. A key found active is cached for
API_KEY_CACHE_SECONDS, which keeps PostgreSQL off the request path (and intake going,
into Kafka, while PostgreSQL is down). Revoking a key or deactivating a tenant writes
PostgreSQL first, for every lookup to come, then a revocation marker in Redis; before
trusting a cached owner each request asks Redis whether its key or tenant carries a
marker (one EXISTS, beside the rate limiter's call), and on a marker drops the cache
entry and asks PostgreSQL. A marker outlives every cache entry filled before it.
While Redis cannot answer, cached owners are trusted as before markers existed (up to
API_KEY_CACHE_SECONDS); NOTIFYHUB_RATE_LIMIT_FAIL_OPEN decides whether requests go on.
"""

from __future__ import annotations

import hmac
import time
import uuid
from dataclasses import dataclass

from aiohttp import web
from redis.exceptions import RedisError

from notifyhub.app import resources, settings
from notifyhub.db import tenants
from notifyhub.db.tenants import ApiKeyOwner, hash_api_key
from notifyhub.inbox import tokens as inbox_tokens
from notifyhub.model.keys import recipient_name
from notifyhub.web.api_key_limits import SlidingWindowLimiter
from notifyhub.web.responses import ApiError

# A key found active is trusted for this long without asking PostgreSQL again: it keeps
# the database off every request and lets intake go on (into Kafka) while PostgreSQL is
# down. Revocation does not wait for it: see the module docstring.
API_KEY_CACHE_SECONDS = 30.0
# How long a revocation marker stays in Redis: far beyond API_KEY_CACHE_SECONDS, so a cache
# entry filled by a lookup that raced the revocation has expired before its marker does.
REVOCATION_MARKER_SECONDS = 3600


@dataclass(frozen=True)
class Caller:
    tenant_id: uuid.UUID
    key_id: uuid.UUID


_owners: dict[str, tuple[float, ApiKeyOwner]] = {}
# Per scope ("api_key", "inbox_token"), made on first use (Redis is not reached at import).
_limiters: dict[str, SlidingWindowLimiter] = {}


async def _within_rate(scope: str, limit: int, key: str, whose: str) -> None:
    """429 (or 503 while Redis cannot answer) when ``key`` is over ``limit`` requests per
    window; ``whose`` names the caller in the message."""
    limiter = _limiters.get(scope)
    if limiter is None:
        limiter = _limiters[scope] = SlidingWindowLimiter(
            resources.redis(),
            scope=scope,
            limit=limit,
            window_seconds=settings.api_rate_window_seconds,
            fail_open=settings.rate_limit_fail_open,
        )
    decision = await limiter.check(key)
    if decision.allowed:
        return
    if decision.degraded:
        raise ApiError(
            "SERVICE_UNAVAILABLE",
            "rate limiting is unavailable; retry later",
            headers={"Retry-After": "5"},
        )
    raise ApiError(
        "RATE_LIMITED",
        f"over {limit} requests per {settings.api_rate_window_seconds:g} s for {whose}",
        headers={"Retry-After": str(decision.retry_after_seconds)},
    )


def _key_marker(key_id: uuid.UUID) -> str:
    return f"auth:revoked:api_key:{key_id}"


def _tenant_marker(tenant_id: uuid.UUID) -> str:
    return f"auth:revoked:tenant:{tenant_id}"


async def mark_api_key_revoked(key_id: uuid.UUID) -> None:
    """Make every worker stop trusting its cached owner of the key (after PostgreSQL says so)."""
    await resources.redis().set(_key_marker(key_id), 1, ex=REVOCATION_MARKER_SECONDS)


async def mark_tenant_deactivated(tenant_id: uuid.UUID, deactivated: bool) -> None:
    """Set (or, on reactivation, clear) the tenant's marker, after PostgreSQL says so."""
    if deactivated:
        await resources.redis().set(_tenant_marker(tenant_id), 1, ex=REVOCATION_MARKER_SECONDS)
    else:
        await resources.redis().delete(_tenant_marker(tenant_id))


async def _revoked_since_cached(owner: ApiKeyOwner) -> bool:
    try:
        markers = _key_marker(owner.key_id), _tenant_marker(owner.tenant_id)
        return bool(await resources.redis().exists(*markers))
    except (RedisError, OSError):
        return False


async def _owner_of(raw_key: str) -> ApiKeyOwner | None:
    key_hash = hash_api_key(raw_key)
    cached = _owners.get(key_hash)
    if cached is not None and cached[0] > time.monotonic():
        if not await _revoked_since_cached(cached[1]):
            return cached[1]
        _owners.pop(key_hash, None)
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
    await _within_rate("api_key", settings.api_rate_limit, str(owner.key_id), "this API key")
    return Caller(owner.tenant_id, owner.key_id)


def authenticate_admin(request: web.Request) -> None:
    """``X-Admin-Token``: 401 when missing, 403 when wrong (compared in constant time). The
    previous token (NOTIFYHUB_ADMIN_TOKEN_PREVIOUS), when set, is accepted too."""
    given = request.headers.get("X-Admin-Token", "")
    if not given:
        raise ApiError("UNAUTHORIZED", "missing X-Admin-Token header")
    # Both tokens are compared, so the time taken does not tell which one came close.
    accepted = [settings.admin_token, settings.admin_token_previous]
    matches = [
        hmac.compare_digest(given.encode(), token.get_secret_value().encode())
        for token in accepted
        if token is not None
    ]
    if not any(matches):
        raise ApiError("FORBIDDEN", "invalid admin token")


async def authenticate_inbox_token(token: str) -> inbox_tokens.InboxGrant:
    """A recipient's inbox token (signed with the current or the previous secret), rate
    limited per recipient like an API key: 401 when bad, 429 over the rate."""
    try:
        grant = inbox_tokens.verify(settings.ws_token_secrets(), token)
    except inbox_tokens.InvalidToken as exc:
        raise ApiError("UNAUTHORIZED", str(exc)) from None
    await _within_rate(
        "inbox_token",
        settings.inbox_token_rate_limit,
        recipient_name(grant.tenant_id, grant.recipient_id),
        "this recipient's inbox token",
    )
    return grant
