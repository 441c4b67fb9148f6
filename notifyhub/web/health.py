"""``/health``, ``/livez``, ``/readyz`` and ``/metrics``: unauthenticated, for probes and
scrapers; and the timer that keeps the consumer-lag gauge current."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from aiohttp import web
from faust.web import View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from notifyhub import db
from notifyhub.app import app, declared_topics, resources, settings
from notifyhub.kafka.faust_app import topics_unknown_to_producer
from notifyhub.observability.lag import by_topic
from notifyhub.observability.metrics import CONSUMER_LAG_MESSAGES
from notifyhub.runtime.outages import OUTAGES

logger = logging.getLogger(__name__)

# Each dependency gets this long to answer before it counts as down.
CHECK_TIMEOUT_SECONDS = 2.0
# Two broker round trips (committed offsets, end offsets); a gauge left stale is better
# than a timer that hangs.
LAG_TIMEOUT_SECONDS = 5.0


async def _check(probe: Awaitable[object]) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure means "down"; the reason is for the operator
        return f"down: {type(exc).__name__}"
    return "ok"


async def _postgres() -> None:
    await db.ping(await resources.db())


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
async def _note_rebalance_complete(sender: object, /, *args: object, **kwargs: object) -> None:
    global _first_rebalance_done
    _first_rebalance_done = True


@app.page("/readyz")
class ReadyView(View):
    """Ready once the worker has joined its group (its topics exist, partitions are assigned
    and tables recovered), its producer knows every topic it writes, and while it is not
    rebalancing."""

    async def get(self, request: web.Request) -> web.Response:
        if not _first_rebalance_done:
            return web.json_response({"status": "starting"}, status=503)
        if app.rebalancing:
            return web.json_response({"status": "rebalancing"}, status=503)
        missing = topics_unknown_to_producer(app, declared_topics)
        if missing:
            return web.json_response({"status": "starting", "topics_unknown": missing}, status=503)
        return web.json_response({"status": "ready"})


@app.page("/metrics")
class MetricsView(View):
    """Prometheus metrics of this worker (unauthenticated, like NotifyHub's)."""

    async def get(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# Faust hides App.timer from mypy (no_type_check), so its decorator is untyped.
@app.timer(settings.lag_interval_seconds)  # type: ignore[untyped-decorator]
async def measure_consumer_lag() -> None:
    """The lag of the partitions this worker owns, by topic (summed over the workers, it is
    the group's lag); topics it no longer owns drop out of its gauge."""
    prefix = f"{settings.topic_prefix}."
    owned = [tp for tp in app.assignor.assigned_actives() if tp.topic.startswith(prefix)]
    lags = []
    if owned:
        try:
            async with asyncio.timeout(LAG_TIMEOUT_SECONDS):
                lags = await resources.lag_meter().measure(owned)
        except OUTAGES as exc:
            logger.warning("consumer lag not measured: %r", exc)
            return
    CONSUMER_LAG_MESSAGES.clear()
    for topic, lag in by_topic(lags).items():
        CONSUMER_LAG_MESSAGES.labels(topic=topic).set(lag)
