"""The provider token bucket, in the real Redis: shared by every client of the bucket."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis.asyncio as redis

from notifyhub.delivery.provider_limits import ProviderRateLimiter
from tests.support.stack import Services

RATE = 20.0


async def test_limiters_sharing_a_bucket_never_pass_more_than_the_rate_together(
    redis_client: redis.Redis, services: Services
) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    # Two limiters with their own connections stand for two workers.
    first = ProviderRateLimiter(redis_client, prefix, {"twilio": RATE})
    second_client = redis.Redis.from_url(services.redis_url)
    second = ProviderRateLimiter(second_client, prefix, {"twilio": RATE})
    passed: list[float] = []

    async def take(limiter: ProviderRateLimiter, count: int) -> None:
        for _ in range(count):
            await limiter.acquire("twilio")
            passed.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(take(first, 40), take(second, 40))
    await second_client.aclose()
    # A full bucket (one second's worth) passes at once; the other 60 wait for refills.
    assert passed[-1] - started >= (80 - RATE) / RATE * 0.95
    passed.sort()
    for i, at in enumerate(passed):
        in_window = sum(1 for later in passed[i:] if later - at < 1.0)
        assert in_window <= 2 * RATE, f"{in_window} tokens within one second"


async def test_a_provider_without_a_rate_is_not_limited(redis_client: redis.Redis) -> None:
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    limiter = ProviderRateLimiter(redis_client, prefix, {"twilio": 1.0})
    for _ in range(5):
        await limiter.acquire("ses")
    assert not await redis_client.exists(f"{prefix}:provider-rate:ses")
    await limiter.acquire("twilio")
    assert await redis_client.exists(f"{prefix}:provider-rate:twilio")
