"""Faust's ``App``, with NotifyHub's fixes and its cheaper per-record path, fenced here.

Fixes (``notifyhub.kafka.consumer``): each partition's records are passed on in offset
order, and a rebalance's recovery does not clear the stream buffers a second time.

The cheaper path. Faust spends 150-300 µs of CPU per record and hop on this machine
before an agent sees the record; most of it is machinery a batch agent does not need:

* the consumer hands each record to the conductor as a task of its own, raced against
  a second task (``wait_first``), although delivering it to a stream's buffer almost
  never waits (``notifyhub.kafka.consumer``: ``_Delivery``);
* a stream takes each record from its buffer with a loop turn of its own
  (``asyncio.sleep(0)``), runs processors and sensors per record, and ``take_events``
  adds a processor per record on top (``take_batches`` drains the buffer instead);
* ``Topic.send`` builds a future message and calls sensors per record
  (``produce`` hands bytes to the Kafka producer);
* a table write sends its changelog record through the producer buffer, one future
  message and a RocksDB write of the persisted offset each (``ChangelogTable`` keeps them
  until the agent's batch is done, then ``flush_changelogs`` produces them together and
  records each partition's last offset once).

Each piece keeps Faust's contract: the same acks and offsets, the same flow control
(rebalances suspend and clear the buffers), the same producer flush before commits.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, ClassVar, TypeVar, cast

import faust
from faust.streams import _current_event
from faust.transport.conductor import Conductor
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import ChannelT, EventT, StreamT
from faust.types.transports import TransportT
from mode.utils.queues import FlowControlEvent

from notifyhub.kafka.consumer import InOrderTransport, StreamFlowControl

__all__ = [
    "ChangelogTable",
    "NotifyHubApp",
    "NotifyHubWorker",
    "at_event",
    "flush_changelogs",
    "produce",
    "take_batches",
]


T = TypeVar("T")


class ChangelogTable(faust.Table[Any, Any]):
    """Faust's table, whose changelog records wait in ``pending`` until ``flush_changelogs``.

    The store is written at once, as Faust does; what changes is when the changelog record
    reaches the producer: at the end of the agent's batch, before the batch is acknowledged
    (so, as with Faust's own buffer, before the source offset can be committed).
    """

    # (table, partition, key bytes, value bytes): what the next flush produces, in order.
    pending: ClassVar[list[tuple[ChangelogTable, int, bytes, bytes | None]]] = []

    def on_key_set(self, key: Any, value: Any) -> None:
        partition = self.partition_for_key(key)
        assert partition is not None  # no use_partitioner: the current event's partition
        self._hold(partition, key, value, self.value_serializer)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        partition = self.partition_for_key(key)
        assert partition is not None
        self._hold(partition, key, None, "raw")
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)

    def _hold(self, partition: int, key: Any, value: Any, value_serializer: Any) -> None:
        topic = self.changelog_topic
        key_bytes, _ = topic.prepare_key(key, self.key_serializer)
        value_bytes, _ = topic.prepare_value(value, value_serializer)
        ChangelogTable.pending.append((self, partition, key_bytes, value_bytes))


async def flush_changelogs(app: faust.App) -> None:
    """Produce the changelog records tables hold, in order; once the broker has the last of
    a partition, that offset is the table's persisted offset (how far its store is
    known to hold the changelog, read again from there after a restart)."""
    held, ChangelogTable.pending = ChangelogTable.pending, []
    last: dict[tuple[ChangelogTable, int], asyncio.Future[Any]] = {}
    for table, partition, key, value in held:
        topic = table.changelog_topic.get_topic_name()
        last[(table, partition)] = await produce(app, topic, key, value, partition=partition)
    for (table, _), sent in last.items():
        sent.add_done_callback(table_persisted(table))


def table_persisted(table: ChangelogTable) -> Callable[[asyncio.Future[Any]], None]:
    def persisted(sent: asyncio.Future[Any]) -> None:
        if not sent.cancelled() and sent.exception() is None:
            metadata = sent.result()
            table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)

    return persisted


class NotifyHubApp(faust.App):
    """Faust's app with the two fixes ``notifyhub.kafka.consumer`` explains, a consumer
    that delivers records to the stream buffers without a task per record, and tables
    whose changelog records are produced per batch (``ChangelogTable``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("Table", ChangelogTable)
        super().__init__(*args, **kwargs)

    def _new_transport(self) -> TransportT:
        return InOrderTransport(self.conf.broker_consumer, self)

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return StreamFlowControl(loop=self.loop)


class NotifyHubWorker(faust.Worker):
    """Faust's worker without its terminal spinner. With a log level of WARN or above the
    spinner sets the root logger to DEBUG (so that it spins for every record), and every
    library's debug line is then formatted and dropped: a tenth of a busy worker's CPU."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None


async def take_batches(
    stream: StreamT[T], max_size: int, within: float
) -> AsyncIterator[Sequence[EventT[T]]]:
    """Batches of up to ``max_size`` events from an agent's stream, the first waited for,
    the rest gathered for at most ``within`` seconds; each batch is acknowledged after the
    agent's body finished with it (like ``take_events``, without its per-record cost).

    Events of an earlier consumer generation, or taken while flow is suspended (a
    rebalance), are acknowledged and dropped, as Faust's stream does.
    """
    app = stream.app
    # Faust's interfaces do not declare what is taken here: an agent's stream reads a
    # channel (its topic), and the app's consumer and conductor are Faust's own classes.
    queue = cast(ChannelT[T], stream.channel).queue
    consumer = cast(Consumer, app.consumer)
    unacked = consumer._unacked_messages
    acking_topics = cast(Conductor, app.topics)._acking_topics
    flow_control = app.flow_control
    loop = asyncio.get_running_loop()
    batch: list[EventT[T]] = []
    while True:
        batch.clear()
        try:
            event = await queue.get()
        except StopAsyncIteration:
            return  # Faust ends its streams this way when the worker stops
        deadline = loop.time() + within
        while True:
            message = event.message
            if not flow_control.is_active() or message.generation_id != app.consumer_generation_id:
                event.ack()
            else:
                if message.topic in acking_topics and not message.tracked:
                    message.tracked = True
                    unacked.add(message)
                batch.append(event)
            if len(batch) >= max_size:
                break
            if not queue.empty():
                event = queue.get_nowait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    event = await queue.get()
            except TimeoutError:
                break
        if not batch:
            continue
        try:
            yield batch
        finally:
            for done in batch:
                done.ack()


@contextmanager
def at_event(event: EventT[Any]) -> Iterator[None]:
    """Make ``event`` the current one: Faust tables read and write the partition of the
    current event (inside a batch, Faust's own current event is not the one at hand)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def produce(
    app: faust.App,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    *,
    partition: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> asyncio.Future[Any]:
    """Hand one record to the Kafka producer; the future resolves when the broker has it.

    Faust flushes this same producer before it commits offsets, so an agent may leave
    the future alone: what an event produced is in Kafka before the event is committed.
    """
    # The app's producer is Faust's aiokafka driver's (ProducerT does not declare the
    # aiokafka producer it wraps; aiokafka is untyped, so that one is Any).
    producer = cast(aiokafka_driver.Producer, app.producer)._ensure_producer()
    sent: asyncio.Future[Any] = await producer.send(
        topic, value, key=key, partition=partition, headers=headers
    )
    return sent


def topics_unknown_to_producer(app: faust.App, topics: Iterable[str]) -> list[str]:
    """The topics the producer has no partitions for yet, now tracked and asked for again.

    A topic the worker has just created can be missing from the broker's metadata for a
    few seconds; a record produced to it meanwhile waits (an HTTP request answers 503),
    so a worker is not ready until its producer knows every topic it writes. The metadata
    refresh runs in aiokafka's background task: a later call finds them.
    """
    client = cast(aiokafka_driver.Producer, app.producer)._ensure_producer().client
    missing = sorted(t for t in topics if client.cluster.partitions_for_topic(t) is None)
    for topic in missing:
        client.add_topic(topic)
    return missing
