"""Provider rate limits: one token bucket per provider in Redis, shared by every worker.

However many workers send, a provider never gets more than its configured requests per
second (plus a burst of one second's worth). A worker that finds the bucket empty waits
for the next token (backpressure: its partition's sends slow down) rather than failing.
Redis's own clock is used, so the workers' clocks need not agree.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as redis

from notifyhub.observability.metrics import RATE_LIMIT_DECISIONS
from notifyhub.runtime.outages import through_outages

logger = logging.getLogger(__name__)

# KEYS[1]: the bucket. ARGV: rate (tokens/s), capacity.
# Returns 0 when a token was taken, else the milliseconds until one is available.
_TAKE_TOKEN = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local rate = tonumber(ARGV[1]) / 1000
local capacity = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = math.ceil((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate) + 1000)
return wait
"""


class ProviderRateLimiter:
    """Waits for a token of a provider's bucket; providers without a rate are not limited."""

    def __init__(self, client: redis.Redis, key_prefix: str, rates: dict[str, float]) -> None:
        self._client = client
        self._key_prefix = key_prefix
        self._rates = rates
        self._script = client.register_script(_TAKE_TOKEN)

    def limits(self, provider: str) -> bool:
        """Whether the provider has a rate (each send then waits for a token)."""
        return provider in self._rates

    async def acquire(self, provider: str) -> None:
        rate = self._rates.get(provider)
        if rate is None:
            return
        # A bucket holds one second's worth, at least one token.
        capacity = max(1.0, rate)
        key = f"{self._key_prefix}:provider-rate:{provider}"
        waited = False
        while True:
            wait_ms = await through_outages(
                lambda: self._script(keys=[key], args=[rate, capacity]),
                f"rate limit of provider {provider}",
            )
            if int(wait_ms) == 0:
                RATE_LIMIT_DECISIONS.labels("provider", "delayed" if waited else "allowed").inc()
                return
            waited = True
            await asyncio.sleep(int(wait_ms) / 1000)
