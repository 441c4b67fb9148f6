"""The Kafka consumer: Faust's, made to hand each partition's records over in offset order.

For the topics whose offsets Faust commits (every topic our agents consume), ``OffsetGate``
passes a record on only when it is the next one expected for its partition (the committed
offset after a seek, then one past the last record passed on). A record ahead of that sends
the partition back to the expected offset, so the records in between are read, in order;
only records deleted by retention are skipped. ``StreamFlowControl`` clears the stream
buffers only when flow resumes after a rebalance suspended it. Without both, faust-streaming
0.15 drops records around rebalances and restarts, and their notifications never move.

Two costs cut: the consumer puts a record into the stream buffers itself when nothing has
to wait (``_Delivery``), and fetches adapt to the traffic (``AdaptiveFetchConsumerThread``).

The history, the measurements and the upstream issues: docs/decisions.md, "The in-order consumer".
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING, ensure_TP
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from mode.utils.queues import FlowControlEvent

logger = logging.getLogger(__name__)

LogStart = Callable[[TP], Awaitable[int | None]]


class OffsetGate:
    """Per partition, the offset the next record passed on must have, and what to do with
    a record that has another."""

    def __init__(self) -> None:
        # None: any offset (the group has committed nothing for the partition yet).
        self._next: dict[TP, int | None] = {}
        # The last jump per partition: (expected, offset to read from), so that the rest
        # of a stale batch neither asks the broker again nor logs again.
        self._sought: dict[TP, tuple[int, int]] = {}

    def expect(self, tp: TP, offset: int | None) -> None:
        logger.debug("%s: expecting %s next", tp, offset)
        self._next[tp] = offset

    async def admit(self, tp: TP, offset: int, log_start: LogStart) -> int | None:
        """``None`` when the record at ``offset`` is to be passed on; else the offset to
        read the partition from instead (``offset`` itself: skip it, it was passed on)."""
        expected = self._next.get(tp)
        if expected is None or offset == expected:
            self._next[tp] = offset + 1
            return None
        if offset < expected:
            logger.debug("%s: record %d skipped (passed on already; %d expected)", tp, offset, expected)
            return offset
        target = await self._readable_from(tp, expected, offset, log_start)
        if offset == target:
            self._next[tp] = offset + 1
            return None
        return target

    async def _readable_from(self, tp: TP, expected: int, offset: int, log_start: LogStart) -> int:
        """Where to read ``tp`` from when ``offset`` came instead of ``expected``:
        ``expected``, unless retention deleted it."""
        sought = self._sought.get(tp)
        if sought is not None and sought[0] == expected:
            return sought[1]
        target = max(expected, await log_start(tp) or 0)
        self._sought[tp] = (expected, target)
        if target > expected:
            logger.warning(
                "%s: records %d to %d were deleted (retention) before they were read",
                tp,
                expected,
                target - 1,
            )
        else:
            logger.warning(
                "%s: record %d came while %d was expected (fetched before a seek); "
                "fetching again from %d",
                tp,
                offset,
                expected,
                expected,
            )
        return target


# A fetch names every partition the worker has (some 200 with our topics), so each one
# costs the worker the same however little it brings back. Kafka's defaults, which Faust
# keeps, have the broker answer as soon as it has one byte: under a steady trickle that is
# a fetch every few milliseconds, whose encoding and decoding took a third of a worker at
# 500 notifications/s. While records flow, the broker now waits until it has this much...
BUSY_FETCH_MIN_BYTES = 64 * 1024
# ...or this long, whichever comes first (measured at a steady 500/s with
# bench/topology.py --rate 500: worker CPU per 1,000 notifications 1.77 s at 1 byte, 1.4 s
# at 10 ms, 1.1 s at 25 ms, 0.9 s at 50 ms; p99 to delivered lowest at 25 ms, 195-200 ms).
BUSY_FETCH_MAX_WAIT_MS = 25
# A fetch that brought nothing puts the next one back to Kafka's way (the first byte
# answers it; Faust's 1.5 s long poll otherwise): an idle worker would spend 12% of a core
# on a fetch every 25 ms (2% this way), and the first record after a lull would wait.
IDLE_FETCH_MIN_BYTES = 1


async def _adaptive(
    fetcher: Any, idle_max_wait_ms: int, fetch: Callable[..., Awaitable[bool]], *args: Any
) -> bool:
    got = await fetch(*args)
    # aiokafka reads these when it builds the next fetch request.
    if got:
        fetcher._fetch_min_bytes = BUSY_FETCH_MIN_BYTES
        fetcher._fetch_max_wait_ms = BUSY_FETCH_MAX_WAIT_MS
    else:
        fetcher._fetch_min_bytes = IDLE_FETCH_MIN_BYTES
        fetcher._fetch_max_wait_ms = idle_max_wait_ms
    return got


class AdaptiveFetchConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose aiokafka fetcher lets the broker gather records for
    a fetch while they flow, and answers at once after a lull."""

    async def on_start(self) -> None:
        await super().on_start()
        # aiokafka has no setting for it: its fetch routine calls this per request.
        fetcher = self._ensure_consumer()._fetcher
        fetcher._proc_fetch_request = functools.partial(
            _adaptive, fetcher, fetcher._fetch_max_wait_ms, fetcher._proc_fetch_request
        )


# The fetch loop lets other tasks run after this many records passed on (as Faust's does).
YIELD_EVERY_RECORDS = 100


class InOrderConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer that passes on no record out of offset order, and puts
    records straight into the stream buffers when nothing has to wait."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._gate = OffsetGate()

    def _new_consumer_thread(self) -> AdaptiveFetchConsumerThread:
        return AdaptiveFetchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """Faust's fetch loop, minus two tasks per record.

        Faust hands every record to the conductor as a task raced against a second task
        that waits for the flow to be suspended (so that a rebalance can interrupt a
        delivery waiting for room in a full buffer). A delivery that need not wait is
        done here synchronously (``deliver_now``); the others take Faust's way.
        """
        callback = self.callback
        deliver_now = _Delivery(self.app).now
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        suspend_flow = self.suspend_flow
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await asyncio.sleep(0)
                if self.should_stop:
                    continue
                passed = 0
                async for tp, message in records:
                    passed += 1
                    if passed % YIELD_EVERY_RECORDS == 0:
                        await asyncio.sleep(0)
                    offset = message.offset
                    last = read_offset[tp]
                    if last is not None and offset < last:
                        continue  # read already (Faust drops it the same way)
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                    if self._commit_every is not None and self._n_acked >= self._commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if suspend_flow.is_set() or not deliver_now(tp, message):
                        await self.wait_first(callback(message), suspend_flow.wait())
                    read_offset[tp] = offset
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:  # noqa: ASYNC109 (Faust's signature)
        acks_enabled_for = self.app.topics.acks_enabled_for
        admit = self._gate.admit
        async for tp, message in super().getmany(timeout):
            # Faust commits only the topics with acks; the others (changelogs) it reads whole.
            if acks_enabled_for(message.topic):
                read_from = await admit(tp, message.offset, self._log_start)
                if read_from is not None:
                    if read_from != message.offset:
                        await self.seek(tp, read_from)
                    continue
            yield tp, message

    async def _log_start(self, tp: TP) -> int | None:
        return (await self.earliest_offsets(tp)).get(tp)

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek to the committed offsets (Faust does on every assignment); expect them next."""
        committed = await super().seek_to_committed()
        for tp, offset in committed.items():
            self._gate.expect(ensure_TP(tp), offset if offset is not None and offset >= 0 else None)
        return committed

    async def seek(self, partition: TP, offset: int) -> None:
        await super().seek(partition, offset)
        self._gate.expect(ensure_TP(partition), offset)


class _Delivery:
    """Faust's conductor delivery of one record to the streams of its partition, done
    synchronously when it need not wait: flow running, the producer's buffer not over its
    limit, room in every stream buffer, one event type for all. Otherwise ``now`` answers
    False and the record takes Faust's own (waiting) way."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._handlers = app.topics._tp_to_callback
        self._lock = app.topics._tp_to_callback_lock
        self._is_flowing = app.flow_control.is_active
        self._producer_buffer = app.producer.buffer
        self._loads_key = app.serializers.loads_key
        self._loads_value = app.serializers.loads_value
        self._create_event = app.create_event

    def now(self, tp: TP, message: Message) -> bool:
        if not self._is_flowing() or self._lock.locked():
            return False
        buffer = self._producer_buffer
        if buffer.size > buffer.max_messages:
            return False
        handler = self._handlers.get(tp)
        if handler is None:
            return False
        channels = getattr(handler, "channels", None)  # Faust's Cython handler has them
        if not channels:
            return False
        first: Any = None  # a Faust channel (the handler holding them is untyped)
        for channel in channels:
            if channel.queue.full():
                return False
            if first is None:
                first = channel
            elif (channel.key_type, channel.value_type) != (first.key_type, first.value_type):
                return False
        schema = first.schema
        try:
            key = schema.loads_key(self._app, message, loads=self._loads_key)
            value = schema.loads_value(self._app, message, loads=self._loads_value)
        except Exception:
            return False  # Faust's way reports the decode error to the channels
        event = self._create_event(key, value, message.headers, message)
        message.refcount += len(channels)
        for channel in channels:
            channel.queue.put_nowait_enhanced(
                event,
                on_pressure_high=handler.on_pressure_high,
                on_pressure_drop=handler.on_pressure_drop,
            )
        return True


class InOrderTransport(aiokafka_driver.Transport):
    """Faust's aiokafka transport with the in-order consumer."""

    Consumer = InOrderConsumer


class StreamFlowControl(FlowControlEvent):
    """Faust's flow control of the stream buffers, minus the clear of buffers that are
    flowing: the records in them were passed on after the seek, and nothing would fetch
    them again."""

    def resume(self) -> None:
        if self.is_active():
            logger.debug("flow resumed while flowing; %d buffered records kept", self.buffered())
            return
        super().resume()

    def buffered(self) -> int:
        """How many records the buffers it manages hold."""
        return sum(queue.qsize() for queue in self._queues)
