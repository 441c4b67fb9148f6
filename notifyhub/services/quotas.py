"""Per-tenant quotas on accepted notifications per second, shared by every worker.

One tenant must not fill the pipeline for all: each notification the HTTP API accepts
uses one unit of its tenant's quota. The quota is a rate with a burst of one second's
worth (at least a full bulk request), kept in Redis as a GCRA "theoretical arrival time"
(one key per tenant, one script call per request, whatever the request's size).

A tenant's rate is its own (``tenants.notifications_per_second``, set through the admin
API) or the deployment's default; it is read from PostgreSQL at most every
``RATE_CACHE_SECONDS`` per worker, and a change reaches every worker within that time.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import asyncpg
import redis.asyncio as redis
from redis.exceptions import RedisError

from notifyhub.db import quotas
from notifyhub.observability.metrics import RATE_LIMIT_DECISIONS
from notifyhub.runtime.outages import OUTAGES

logger = logging.getLogger(__name__)

RATE_CACHE_SECONDS = 10.0
# A bulk request of this many must fit in one burst, whatever the tenant's rate.
MIN_BURST = 1000

# KEYS[1]: the tenant's key. ARGV: now (µs), µs per unit, burst (µs), units asked.
# Admits all the units or none; answers {admitted, µs until they would be}.
_GCRA = """
local now, per_unit, burst, units = tonumber(ARGV[1]), tonumber(ARGV[2]),
                                    tonumber(ARGV[3]), tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + units * per_unit
local allowed_at = new_tat - burst
if allowed_at > now then
  return {0, allowed_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, 0}
"""


@dataclass(frozen=True)
class QuotaDecision:
    allowed: bool
    rate: int
    retry_after_seconds: int = 0


class TenantQuotas:
    def __init__(self, client: redis.Redis, default_rate: int, fail_open: bool) -> None:
        self._script = client.register_script(_GCRA)
        self._default_rate = default_rate
        self._fail_open = fail_open
        self._rates: dict[uuid.UUID, tuple[float, int]] = {}

    async def rate_of(self, pool: asyncpg.Pool | None, tenant_id: uuid.UUID) -> int:
        cached = self._rates.get(tenant_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        rate = cached[1] if cached is not None else self._default_rate
        if pool is not None:
            try:
                rate = await quotas.notifications_per_second(pool, tenant_id) or self._default_rate
            except OUTAGES as exc:
                # Intake goes on without PostgreSQL (into Kafka); so does its quota.
                logger.warning("tenant quota unreadable (%r); using %d/s", exc, rate)
        self._rates[tenant_id] = (time.monotonic() + RATE_CACHE_SECONDS, rate)
        return rate

    async def admit(self, pool: asyncpg.Pool | None, tenant_id: uuid.UUID, units: int) -> QuotaDecision:
        """Take ``units`` of the tenant's quota, or none when they do not fit now."""
        rate = await self.rate_of(pool, tenant_id)
        per_unit = 1_000_000 / rate
        burst = max(rate, MIN_BURST) * per_unit
        try:
            admitted, wait_us = await self._script(
                keys=[f"quota:tenant:{tenant_id}"],
                args=[int(time.time() * 1_000_000), per_unit, burst, units],
            )
        except (RedisError, OSError) as exc:
            decision = "failed_open" if self._fail_open else "failed_closed"
            RATE_LIMIT_DECISIONS.labels("tenant_quota", decision).inc()
            logger.warning("tenant quota unavailable (%r): %s", exc, decision)
            return QuotaDecision(allowed=self._fail_open, rate=rate, retry_after_seconds=5)
        if admitted:
            RATE_LIMIT_DECISIONS.labels("tenant_quota", "allowed").inc()
            return QuotaDecision(allowed=True, rate=rate)
        RATE_LIMIT_DECISIONS.labels("tenant_quota", "limited").inc()
        return QuotaDecision(
            allowed=False, rate=rate, retry_after_seconds=max(1, -(-int(wait_us) // 1_000_000))
        )
