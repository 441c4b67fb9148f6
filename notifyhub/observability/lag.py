"""Consumer lag: how many records of each partition the workers have not processed yet.

Measured as the broker sees it (like ``kafka-consumer-groups.sh --describe``): the end
offset of each partition minus the offset the consumer group last committed there. The
worker reports the partitions it owns (``notifyhub_consumer_lag_messages``); the operator
CLI (``notifyhub lag``) reports the whole group.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # None: the group has committed nothing here yet
    end: int

    @property
    def lag(self) -> int:
        # Nothing committed yet means nothing processed: every record still waits (on a
        # topic whose oldest records were deleted by retention this counts them too).
        return max(0, self.end - (self.committed or 0))


class LagMeter:
    """Reads committed and end offsets through one admin client and one group-less consumer."""

    def __init__(self, bootstrap_servers: str, group_id: str) -> None:
        self._group_id = group_id
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
        # No group: this consumer only asks for end offsets, it never joins or commits.
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, group_id=None)
        self._started = False

    async def _start(self) -> None:
        if not self._started:
            await self._admin.start()
            await self._consumer.start()
            self._started = True

    async def measure(
        self,
        partitions: Iterable[TopicPartition] | None = None,
        topic_prefix: str | None = None,
    ) -> list[PartitionLag]:
        """The lag of ``partitions`` (every partition the group has committed on when None),
        only of the topics whose names start with ``topic_prefix`` when it is given."""
        await self._start()
        committed = {
            tp: meta.offset
            for tp, meta in (await self._admin.list_consumer_group_offsets(self._group_id)).items()
        }
        chosen = list(partitions) if partitions is not None else list(committed)
        if topic_prefix is not None:
            chosen = [tp for tp in chosen if tp.topic.startswith(topic_prefix)]
        if not chosen:
            return []
        ends = await self._consumer.end_offsets(chosen)
        return sorted(
            (
                PartitionLag(tp.topic, tp.partition, _offset(committed.get(tp)), ends[tp])
                for tp in chosen
            ),
            key=lambda lag: (lag.topic, lag.partition),
        )

    async def close(self) -> None:
        if self._started:
            await self._consumer.stop()
            await self._admin.close()
            self._started = False


def _offset(offset: int | None) -> int | None:
    # Kafka answers -1 for a partition the group has no committed offset on.
    return offset if offset is not None and offset >= 0 else None


def by_topic(lags: Collection[PartitionLag]) -> dict[str, int]:
    """Total lag per topic."""
    totals: dict[str, int] = {}
    for lag in lags:
        totals[lag.topic] = totals.get(lag.topic, 0) + lag.lag
    return totals
