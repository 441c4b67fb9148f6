"""Per-API-key rate limit: a sliding window log in Redis, shared by every worker."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

from notifyhub.metrics import RATE_LIMIT_DECISIONS

logger = logging.getLogger(__name__)

# Atomic in Redis: drop entries older than the window, then admit the request only if
# fewer than `limit` remain. Answers {admitted, milliseconds until a slot frees}.
_SLIDING_WINDOW = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
    tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) < limit then
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now)}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int = 0
    degraded: bool = False  # Redis could not be asked


class SlidingWindowLimiter:
    """``limit`` requests per ``window_seconds`` per key, across all workers."""

    def __init__(
        self, client: redis.Redis, scope: str, limit: int, window_seconds: float, fail_open: bool
    ) -> None:
        self._client = client
        self._script = client.register_script(_SLIDING_WINDOW)
        self._scope = scope
        self._limit = limit
        self._window_ms = int(window_seconds * 1000)
        self._fail_open = fail_open

    async def check(self, key: str) -> Decision:
        now_ms = int(time.time() * 1000)
        try:
            admitted, wait_ms = await self._script(
                keys=[f"ratelimit:{self._scope}:{key}"],
                args=[now_ms, self._window_ms, self._limit, f"{now_ms}-{uuid.uuid4().hex[:8]}"],
            )
        except (RedisError, OSError) as exc:
            decision = "failed_open" if self._fail_open else "failed_closed"
            RATE_LIMIT_DECISIONS.labels(self._scope, decision).inc()
            logger.warning("rate limit %s unavailable (%r): %s", self._scope, exc, decision)
            return Decision(allowed=self._fail_open, degraded=True)
        if admitted:
            RATE_LIMIT_DECISIONS.labels(self._scope, "allowed").inc()
            return Decision(allowed=True)
        RATE_LIMIT_DECISIONS.labels(self._scope, "limited").inc()
        return Decision(allowed=False, retry_after_seconds=max(1, -(-int(wait_ms) // 1000)))
