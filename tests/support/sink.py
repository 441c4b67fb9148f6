"""What a worker's sink provider recorded (a Redis list per deployment)."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as redis

from tests.support.workers import Worker


async def sunk(client: redis.Redis, worker: Worker, **match: str) -> list[dict[str, Any]]:
    """What the sink provider recorded that matches every given field."""
    records = [json.loads(raw) for raw in await client.lrange(worker.sink_key, 0, -1)]
    return [r for r in records if all(r.get(k) == v for k, v in match.items())]
