"""What an unavailable dependency (PostgreSQL, Kafka, Redis) looks like when it raises.

Stages wait these out (``through_outages``); the HTTP API answers them with 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    # A pooled connection whose server went away mid-query can be left "in another
    # operation"; the pool replaces it, so this passes like the outage it comes from.
    asyncpg.InternalClientError,
    KafkaError,
    RedisConnectionError,
    RedisTimeoutError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Backoff while a dependency is down: quick at first, then at most every 5 s so a
# returning service is noticed soon without hammering it.
FIRST_RETRY_DELAY_SECONDS = 0.2
MAX_RETRY_DELAY_SECONDS = 5.0


async def through_outages(step: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``step``, retrying for as long as a dependency is unavailable."""
    delay = FIRST_RETRY_DELAY_SECONDS
    while True:
        try:
            return await step()
        except OUTAGES as exc:
            logger.warning("%s: dependency unavailable (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)
