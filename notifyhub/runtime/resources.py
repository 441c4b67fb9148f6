"""Connections a worker shares between its agents and its web views.

They are opened on first use rather than at import or start-up, because Faust
starts agents before extra services and web views after table recovery; whichever
needs a connection first opens it.
"""

from __future__ import annotations

import asyncio

import asyncpg
import redis.asyncio as redis
from aiokafka import AIOKafkaClient

from notifyhub.db import create_pool
from notifyhub.observability.lag import LagMeter
from notifyhub.runtime.settings import Settings

# Redis calls sit on the request path: a Redis that does not answer in this time
# counts as down rather than stalling requests.
REDIS_TIMEOUT_SECONDS = 2.0


class Resources:
    """Lazily opened PostgreSQL pool, Redis client, Kafka metadata client and lag meter for
    one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: asyncpg.Pool | None = None
        self._redis: redis.Redis | None = None
        self._kafka: AIOKafkaClient | None = None
        self._lag_meter: LagMeter | None = None
        self._lock = asyncio.Lock()

    async def db(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await create_pool(self.settings)
        return self._pool

    def redis(self) -> redis.Redis:
        if self._redis is None:
            self._redis = redis.Redis.from_url(
                self.settings.redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            )
        return self._redis

    async def kafka_reachable(self) -> bool:
        """Whether a broker answers a metadata request now (for health checks)."""
        if self._kafka is None:
            client = AIOKafkaClient(bootstrap_servers=self.settings.kafka_bootstrap_servers)
            await client.bootstrap()
            self._kafka = client
        return bool(await self._kafka.force_metadata_update())

    def lag_meter(self) -> LagMeter:
        """Measures the consumer group's lag (connects on its first measurement)."""
        if self._lag_meter is None:
            self._lag_meter = LagMeter(self.settings.kafka_bootstrap_servers, self.settings.app_id)
        return self._lag_meter

    async def close(self) -> None:
        if self._lag_meter is not None:
            await self._lag_meter.close()
            self._lag_meter = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._kafka is not None:
            await self._kafka.close()
            self._kafka = None
