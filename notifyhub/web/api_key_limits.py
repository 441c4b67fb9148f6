"""Per-API-key rate limit: a sliding window log in Redis, shared by every worker.

Concurrent requests share one round trip: the checks made while one is on its way go
together in the next (one script call answers all of them, in order), so a busy worker
asks Redis about once per batch of requests rather than once per request.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError

from notifyhub.observability.metrics import RATE_LIMIT_DECISIONS

logger = logging.getLogger(__name__)

# Atomic in Redis, for each request in order (KEYS[i], ARGV[3 + i]): drop its key's
# entries older than the window, then admit it only if fewer than `limit` remain.
# Answers {admitted, milliseconds until a slot frees} per request.
_SLIDING_WINDOW = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local answers = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now, ARGV[3 + i])
    redis.call('PEXPIRE', key, window)
    answers[i] = {1, 0}
  else
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    answers[i] = {0, math.max(1, tonumber(oldest[2]) + window - now)}
  end
end
return answers
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
        self._waiting: list[tuple[str, asyncio.Future[Decision]]] = []
        self._asking: asyncio.Task[None] | None = None

    async def check(self, key: str) -> Decision:
        decided: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self._waiting.append((f"ratelimit:{self._scope}:{key}", decided))
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._ask())
        return await decided

    async def _ask(self) -> None:
        """Ask Redis about the checks waiting, together, until none waits."""
        while self._waiting:
            # One turn of the loop: the requests ready now join this call.
            await asyncio.sleep(0)
            batch, self._waiting = self._waiting, []
            try:
                decisions = await self._decide([key for key, _ in batch])
            except BaseException as exc:
                # A bug, or the worker stopping: no request may wait for ever.
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                raise
            for (_, future), decision in zip(batch, decisions, strict=True):
                if not future.done():
                    future.set_result(decision)

    async def _decide(self, keys: list[str]) -> list[Decision]:
        now_ms = int(time.time() * 1000)
        members = [f"{now_ms}-{secrets.token_hex(4)}" for _ in keys]
        try:
            answers = await self._script(
                keys=keys, args=[now_ms, self._window_ms, self._limit, *members]
            )
        except (RedisError, OSError) as exc:
            decision = "failed_open" if self._fail_open else "failed_closed"
            RATE_LIMIT_DECISIONS.labels(self._scope, decision).inc(len(keys))
            logger.warning("rate limit %s unavailable (%r): %s", self._scope, exc, decision)
            return [Decision(allowed=self._fail_open, degraded=True)] * len(keys)
        decisions = []
        for admitted, wait_ms in answers:
            if admitted:
                decisions.append(Decision(allowed=True))
            else:
                seconds = max(1, -(-int(wait_ms) // 1000))
                decisions.append(Decision(allowed=False, retry_after_seconds=seconds))
        allowed = sum(d.allowed for d in decisions)
        if allowed:
            RATE_LIMIT_DECISIONS.labels(self._scope, "allowed").inc(allowed)
        if len(decisions) > allowed:
            RATE_LIMIT_DECISIONS.labels(self._scope, "limited").inc(len(decisions) - allowed)
        return decisions
