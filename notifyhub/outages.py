"""What an unavailable dependency (PostgreSQL, Kafka, Redis) looks like when it raises.

Stages wait these out (``agents/reliability.py``); the HTTP API answers them with 503.
"""

from __future__ import annotations

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
    KafkaError,
    RedisConnectionError,
    RedisTimeoutError,
)
