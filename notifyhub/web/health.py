"""``/health``, ``/livez``, ``/readyz`` and ``/metrics``: unauthenticated, for probes and scrapers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from aiohttp import web
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from notifyhub.app import app, resources

# Each dependency gets this long to answer before it counts as down.
CHECK_TIMEOUT_SECONDS = 2.0


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "down"; the reason is for the operator
        return f"down: {type(exc).__name__}"
    return "ok"


async def _postgres() -> None:
    pool = await resources.db()
    await pool.fetchval("SELECT 1")


async def _kafka() -> None:
    if not await resources.kafka_reachable():
        raise ConnectionError("no broker answered a metadata request")


@app.page("/health")
class HealthView(View):
    async def get(self, request: web.Request) -> web.Response:
        checks = dict(
            zip(
                ("postgres", "redis", "kafka"),
                await asyncio.gather(
                    _check(_postgres()), _check(resources.redis().ping()), _check(_kafka())
                ),
                strict=True,
            )
        )
        healthy = all(state == "ok" for state in checks.values())
        return web.json_response(
            {"status": "ok" if healthy else "degraded", "checks": checks},
            status=200 if healthy else 503,
        )


@app.page("/livez")
class LiveView(View):
    async def get(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


_first_rebalance_done = False


@app.on_rebalance_complete.connect
async def _note_rebalance_complete(sender: object, **kwargs: object) -> None:
    global _first_rebalance_done
    _first_rebalance_done = True


@app.page("/readyz")
class ReadyView(View):
    """Ready once the worker has joined its group (its topics exist, partitions are assigned
    and tables recovered) and while it is not rebalancing."""

    async def get(self, request: web.Request) -> web.Response:
        if not _first_rebalance_done:
            return web.json_response({"status": "starting"}, status=503)
        if app.rebalancing:
            return web.json_response({"status": "rebalancing"}, status=503)
        return web.json_response({"status": "ready"})


@app.page("/metrics")
class MetricsView(View):
    """Prometheus metrics of this worker (unauthenticated, like NotifyHub's)."""

    async def get(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
