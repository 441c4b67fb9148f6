"""A Faust no-op relay: the Faust baselines of ``bench/topology.py``.

``FAUST_RELAY_HOPS`` agents; agent i consumes ``{prefix}-frelay.{i}`` and forwards each
record's key and value, untouched, to ``{prefix}-frelay.{i+1}``. Nothing is decoded and
nothing else is done, so what the relay costs is what Faust costs to move records.
Two modes (``FAUST_RELAY_MODE``):

* ``stock``: ``faust.App``, ``stream.take_events`` and ``Topic.send`` per event: what
  Faust itself costs;
* ``notifyhub``: NotifyHub's ``NotifyHubApp`` with ``take_batches`` and ``produce``
  (``notifyhub.kafka.faust_app``): what is left of that cost with our Faust changes.

Every topic must exist beforehand with ``FAUST_RELAY_PARTITIONS`` partitions (the last
has no agent, so Faust would not create it). ``GET /readyz`` answers 200 once the worker
owns every partition of the agents' topics and is not rebalancing.

Settings, from the environment: ``FAUST_RELAY_PREFIX`` (app id, consumer group and topic
prefix), ``FAUST_RELAY_HOPS``, ``FAUST_RELAY_MODE``, ``FAUST_RELAY_PARTITIONS``,
``FAUST_RELAY_PORT`` (web server, on 127.0.0.1), ``FAUST_RELAY_DATADIR`` and
``KAFKA_BOOTSTRAP_SERVERS``.

    python bench/faust_relay.py worker -l info

Use ``-l info``: with ``-l warn`` Faust's terminal spinner sets the root logger to DEBUG,
and every library's debug line then costs CPU that would land in the figures.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Coroutine
from itertools import pairwise
from typing import Any, cast

import faust
from aiohttp import web
from faust.web import View

MODES = ("stock", "notifyhub")
# What take_events and take_batches gather before the agent sees a batch: up to 500
# events for at most 5 ms, so big batches under load and little added latency when
# records trickle in. Both modes use the same, so only the machinery differs.
BATCH_SIZE = 500
BATCH_WITHIN_SECONDS = 0.005

PREFIX = os.environ["FAUST_RELAY_PREFIX"]
HOPS = int(os.environ["FAUST_RELAY_HOPS"])
MODE = os.environ["FAUST_RELAY_MODE"]
PARTITIONS = int(os.environ["FAUST_RELAY_PARTITIONS"])
if MODE not in MODES:
    raise SystemExit(f"FAUST_RELAY_MODE must be one of {', '.join(MODES)}, not {MODE!r}")

if MODE == "notifyhub":
    # Only in this mode: the stock relay runs Faust without a line of ours loaded.
    from notifyhub.kafka.faust_app import NotifyHubApp, produce, take_batches

    App: type[faust.App] = NotifyHubApp
else:
    App = faust.App

app = App(
    PREFIX,
    broker=[f"kafka://{server.strip()}" for server in os.environ["KAFKA_BOOTSTRAP_SERVERS"].split(",")],
    store="memory://",
    datadir=os.environ["FAUST_RELAY_DATADIR"],
    autodiscover=False,
    topic_partitions=PARTITIONS,
    # acks=all and 5 ms of producer batching, like NotifyHub's workers (notifyhub.app), so
    # that the two modes differ only in Faust's machinery.
    producer_acks=-1,
    producer_linger=0.005,
    table_standby_replicas=0,
    web_host="127.0.0.1",
    web_bind="127.0.0.1",
    web_port=int(os.environ["FAUST_RELAY_PORT"]),
)

topics = [
    app.topic(
        f"{PREFIX}-frelay.{hop}",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
        partitions=PARTITIONS,
    )
    for hop in range(HOPS + 1)
]

Hop = Callable[[faust.StreamT[Any]], Coroutine[Any, Any, None]]


def stock_hop(destination: faust.TopicT) -> Hop:
    async def hop(stream: faust.StreamT[Any]) -> None:
        # An agent is given a faust.Stream: faust.StreamT does not declare its take_events.
        batches = cast(faust.Stream[Any], stream).take_events(BATCH_SIZE, within=BATCH_WITHIN_SECONDS)
        async for events in batches:
            for event in events:
                await destination.send(key=event.key, value=event.value)

    return hop


def notifyhub_hop(destination: faust.TopicT) -> Hop:
    name = destination.get_topic_name()

    async def hop(stream: faust.StreamT[Any]) -> None:
        async for events in take_batches(stream, BATCH_SIZE, BATCH_WITHIN_SECONDS):
            for event in events:
                # Faust flushes the producer before it commits: the ack need not be awaited.
                await produce(app, name, event.key, event.value)

    return hop


make_hop = notifyhub_hop if MODE == "notifyhub" else stock_hop
for hop, (source, destination) in enumerate(pairwise(topics)):
    app.agent(source, name=f"hop{hop}")(make_hop(destination))
SOURCE_TOPICS = frozenset(topic.get_topic_name() for topic in topics[:-1])

_first_rebalance_done = False


@app.on_rebalance_complete.connect
async def _note_rebalance_complete(sender: object, /, *args: object, **kwargs: object) -> None:
    global _first_rebalance_done
    _first_rebalance_done = True


@app.page("/readyz")
class ReadyView(View):
    """Ready once the worker owns every partition of the agents' topics, its first
    rebalance is complete and it is not rebalancing again."""

    async def get(self, request: web.Request) -> web.Response:
        assignment = app.consumer.assignment() if _first_rebalance_done else set()
        owned = sum(1 for tp in assignment if tp.topic in SOURCE_TOPICS)
        if owned < len(SOURCE_TOPICS) * PARTITIONS or app.rebalancing:
            return web.json_response({"status": "starting", "partitions": owned}, status=503)
        return web.json_response({"status": "ready", "partitions": owned})


if __name__ == "__main__":
    app.main()
