"""What an unavailable dependency (PostgreSQL, Kafka, Redis) looks like when it raises.

Stages wait these out (``through_outages``); the HTTP API answers them with 503.
Stages also run again what PostgreSQL rolled back to resolve a conflict (a deadlock
between two batches updating the same notifications in different orders).
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

# PostgreSQL rolled the transaction back (deadlock, serialization failure, class 40):
# nothing is down, and the same work run again succeeds.
CONFLICTS: tuple[type[BaseException], ...] = (asyncpg.TransactionRollbackError,)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Backoff while a dependency is down: quick at first, then at most every 5 s so a
# returning service is noticed soon without hammering it.
FIRST_RETRY_DELAY_SECONDS = 0.2
MAX_RETRY_DELAY_SECONDS = 5.0


async def through_outages(step: Callable[[], Awaitable[T]], what: str) -> T:
    """Run ``step``, retrying for as long as a dependency is unavailable, and after a
    conflict PostgreSQL resolved by rolling ``step`` back."""
    delay = FIRST_RETRY_DELAY_SECONDS
    while True:
        try:
            return await step()
        except CONFLICTS as exc:
            logger.warning("%s: rolled back by PostgreSQL (%r); running it again", what, exc)
        except OUTAGES as exc:
            logger.warning("%s: dependency unavailable (%r); retrying in %.1fs", what, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY_SECONDS)
