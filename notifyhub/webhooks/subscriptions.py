"""Which webhook endpoints are subscribed to which events, remembered briefly per worker.

Every delivery and device token event is fanned out, so asking PostgreSQL each time would
cost a query per batch even for tenants without endpoints. Answers are kept
``SUBSCRIPTIONS_CACHE_SECONDS``: a new, changed or deleted endpoint takes up to that long
to get (or stop getting) events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from notifyhub.db import webhooks as webhooks_db
from notifyhub.runtime.resources import Resources

SUBSCRIPTIONS_CACHE_SECONDS = 1.0
# Past this many remembered answers, the expired ones are dropped (tenants come and go).
MAX_REMEMBERED = 10_000

Wanted = tuple[uuid.UUID, str]


class Subscriptions:
    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._cache: dict[Wanted, tuple[float, list[uuid.UUID]]] = {}

    async def endpoints(self, wanted: Iterable[Wanted]) -> dict[Wanted, list[uuid.UUID]]:
        """For each (tenant, event name), the active endpoints subscribed to it."""
        now = time.monotonic()
        asked = set(wanted)
        stale = [w for w in asked if (cached := self._cache.get(w)) is None or cached[0] <= now]
        if stale:
            found = await webhooks_db.subscribed(await self._resources.db(), stale)
            expires = now + SUBSCRIPTIONS_CACHE_SECONDS
            for w in stale:
                self._cache[w] = (expires, found.get(w, []))
            if len(self._cache) > MAX_REMEMBERED:
                self._cache = {w: c for w, c in self._cache.items() if c[0] > now}
        return {w: self._cache[w][1] for w in asked}
