"""The Faust app, its settings and its topics: defined once here, imported everywhere.

Topic names live under ``NOTIFYHUB_TOPIC_PREFIX``. Stages with a ``.priority`` twin
have two lanes: the most urgent notifications, ``priority <= NOTIFYHUB_PRIORITY_THRESHOLD``
(1 is the most urgent), take the priority lane, which its own agent consumes, so they never
wait behind a normal backlog.

    {prefix}.intake[.priority]        requests from any Kafka producer (public contract: IntakeMessage),
                                      and from the HTTP API while PostgreSQL is down
    {prefix}.enrich[.priority]        stored notifications (from the HTTP API, intake, held), keyed
                                      tenant:recipient
    {prefix}.send.{channel}[.priority]  rendered notifications for one channel, keyed tenant:recipient
    {prefix}.held                     notifications held until a time (scheduled, quiet hours), and
                                      the ticks that release them; keyed tenant:recipient
    {prefix}.delivery-events          every status transition (DeliveryEvent), keyed by notification id
    {prefix}.dead-letters             messages a stage could not process, with the reason (DeadLetter)
    {prefix}.send.{channel}.dlq       a channel's sends that failed for good or ran out of attempts
                                      (DeadLetter); like dead-letters, persisted for the admin DLQ API
    {prefix}.device-token-events      push tokens deactivated because the provider called them dead
    {prefix}.webhooks.outbound        one event for one webhook endpoint (WebhookDelivery), keyed by
                                      endpoint; {prefix}.webhooks.dlq when every attempt failed
    {prefix}.preference-updates       preference changes from the API, keyed tenant:recipient
    {prefix}.topic-fanout             one step of a send to a topic's subscribers (TopicFanout), keyed
                                      by the send's id
    {prefix}.receipts                 what providers reported after accepting a message
                                      (ProviderReceipt), keyed provider:message id

Every topic with the same partition count is co-partitioned: Faust gives partition N of
each to the same worker, so the tables keyed like a topic are local to its agents.
Every topic carries JSON bytes; the agents parse them themselves so that a message
that is not even JSON reaches a dead-letter topic instead of crashing a stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
from mode import Service

from notifyhub.cores.records import Outgoing
from notifyhub.kafka.faust_app import NotifyHubApp, produce
from notifyhub.kafka.partitions import partition_of
from notifyhub.kafka.topics import Lane, TopicNames
from notifyhub.model.channels import Channel
from notifyhub.observability import tracing
from notifyhub.runtime.resources import Resources
from notifyhub.runtime.settings import get_settings
from notifyhub.web.middleware import middlewares

settings = get_settings()

AgentFun = Callable[[faust.StreamT[bytes]], Awaitable[None]]

# The HTTP API's body limit (NotifyHub's contract: 1 MB).
MAX_REQUEST_BODY_BYTES = 1024 * 1024


# Producer batching, chosen by measurement (bench/topology.py): a few milliseconds let a
# batch stage's records share produce requests, for a few milliseconds of latency.
PRODUCER_LINGER_SECONDS = 0.002


app = NotifyHubApp(
    settings.app_id,
    broker=[f"kafka://{server.strip()}" for server in settings.kafka_bootstrap_servers.split(",")],
    store="rocksdb://",
    datadir=str(settings.data_dir),
    autodiscover=False,
    topic_partitions=settings.topic_partitions,
    topic_replication_factor=settings.topic_replication_factor,
    # A 202 means "durable": wait for every in-sync replica.
    producer_acks=-1,
    # Exactly-once has open bugs in faust-streaming; at-least-once plus dedupe is the reliable path.
    processing_guarantee="at_least_once",
    producer_linger=PRODUCER_LINGER_SECONDS,
    # A topic created just before the consumer subscribes can be missing from its first
    # metadata; the group leader then assigns without it and, with aiokafka's default
    # (5 minutes), keeps doing so until the next refresh: nothing consumes the topic. Seen
    # on a loaded machine (the SIGTERM fault test: enrich unassigned for 2 minutes).
    consumer_metadata_max_age_ms=10_000,
    table_standby_replicas=settings.table_standby_replicas,
    broker_session_timeout=settings.broker_session_timeout,
    web_host=settings.web_host,
    web_bind=settings.web_bind or settings.web_host,
    web_port=settings.web_port,
    # Faust's built-in views answer without authentication: /table would serve table
    # data, /router the cluster's topology (hosts, partitions), /graph and /stats its
    # internals. NotifyHub's own /internal routes (admin token) cover what operators need.
    web_tables_enabled=False,
    web_router_enabled=False,
    web_graph_enabled=False,
    web_stats_enabled=False,
    web_metrics_enabled=False,
    web_application_options={
        "middlewares": middlewares(),
        "client_max_size": MAX_REQUEST_BODY_BYTES,
    },
)

resources = Resources(settings)


topics = TopicNames.of(settings)


# Every topic name the worker declares (and produces to), for readiness.
declared_topics: list[str] = []


def _topic(*names: str) -> faust.TopicT:
    declared_topics.extend(n for n in names if n not in declared_topics)
    # internal=True makes Faust create the topic with our partition count; Kafka's
    # auto-creation would give it the broker's default (often 1).
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=True,
        partitions=settings.topic_partitions,
        replicas=settings.topic_replication_factor,
    )


@dataclass(frozen=True)
class Lanes:
    """A stage's two topics: the normal lane and the priority lane."""

    normal: faust.TopicT
    priority: faust.TopicT

    def __getitem__(self, lane: Lane) -> faust.TopicT:
        return self.priority if lane is Lane.PRIORITY else self.normal


def _lanes(name: str) -> Lanes:
    return Lanes(*(_topic(topics.lane(name, lane)) for lane in (Lane.NORMAL, Lane.PRIORITY)))


intake_topics = _lanes("intake")
enrich_topics = _lanes("enrich")
send_topics = {channel: _lanes(f"send.{channel}") for channel in Channel}
held_topic = _topic(topics.held)
delivery_events_topic = _topic(topics.delivery_events)
dead_letter_topic = _topic(topics.dead_letters)
send_dead_letter_topics = {channel: _topic(topics.send_dead_letters(channel)) for channel in Channel}
device_token_events_topic = _topic(topics.device_token_events)
webhooks_outbound_topic = _topic(topics.webhooks_outbound)
webhook_dead_letter_topic = _topic(topics.webhook_dead_letters)
# Every dead-letter topic, as one channel for the agent that persists them all.
all_dead_letter_topics = _topic(
    topics.dead_letters,
    topics.webhook_dead_letters,
    *(topics.send_dead_letters(channel) for channel in Channel),
)
preference_updates_topic = _topic(topics.preference_updates)
topic_fanout_topic = _topic(topics.topic_fanout)
receipts_topic = _topic(topics.receipts)


def lane_agents(lanes: Lanes, name: str) -> Callable[[AgentFun], dict[Lane, faust.types.AgentT[bytes]]]:
    """Register one stream processor as an agent on each lane of a stage."""

    def register(fun: AgentFun) -> dict[Lane, faust.types.AgentT[bytes]]:
        return {lane: app.agent(lanes[lane], name=f"{name}-{lane}")(fun) for lane in Lane}

    return register


async def enqueue(topic: faust.TopicT, key: bytes | None, value: bytes, **kwargs: Any) -> None:
    """Hand a message to the producer without waiting for the broker (inside agents).

    Safe because Faust flushes the producer before it commits the offsets of the events
    being processed: an event is never committed before what it produced is in Kafka.
    Waiting for each acknowledgement instead would cost a broker round trip per message.
    The record carries the current trace context (or the ``headers`` given).
    """
    kwargs.setdefault("headers", tracing.kafka_headers())
    await topic.send(key=key, value=value, **kwargs)


async def _send(record: Outgoing) -> asyncio.Future[Any]:
    """Hand one record to the producer; the future resolves when the broker has it.

    The partition is computed here (``partition_of`` remembers recent keys; the producer's
    own murmur2 is pure Python), the same the producer's default partitioner would choose.
    """
    key = record.key
    return await produce(
        app,
        record.topic,
        key,
        record.value,
        partition=None if key is None else partition_of(key, settings.topic_partitions),
        headers=list(record.headers) if record.headers else None,
    )


async def emit(records: Iterable[Outgoing]) -> None:
    """Hand records to the producer, in order, without waiting for the broker (inside agents:
    Faust flushes the producer before it commits the offsets of what produced them)."""
    for record in records:
        await _send(record)


async def publish_all(records: Sequence[Outgoing], within: float) -> None:
    """Produce records and wait until the broker has every one of them (acks=all), at
    most ``within`` seconds (then ``TimeoutError``; the broker may still take them)."""
    acks = [await _send(record) for record in records]
    await asyncio.wait_for(asyncio.gather(*acks), within)


async def publish(topic: faust.TopicT, key: bytes | None, value: bytes) -> None:
    """Produce one message and wait until the broker has it (acks=all).

    Like ``enqueue``, it carries the current trace context in the record's headers.
    """
    pending = await topic.send(key=key, value=value, headers=tracing.kafka_headers())
    await pending


@app.service
class SharedConnections(Service):
    """Closes the shared connections, and flushes batched spans, when the worker stops."""

    async def on_stop(self) -> None:
        await resources.close()
        tracing.shutdown()
