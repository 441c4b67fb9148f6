"""The fault harness: a steady stream of notifications through the sink provider while
something breaks, then an account of what became of each one.

A client sends ``count`` notifications at ``rate`` per second over HTTP, spread over the
workers, each with its own idempotency key and recipient (so no frequency cap drops it).
Like a well-behaved client it retries what was not accepted (a 503, a refused connection)
with the same idempotency key, until its deadline. Meanwhile ``fault`` runs. Afterwards
every accepted notification must reach ``delivered`` in PostgreSQL; the sink's Redis list
says how many were sent, how many were recorded more than once, and how many repeated
sends its dedupe key (the notification id) kept from being recorded twice.

Everything is bounded: the stream by ``count`` and ``rate``, each request by its timeout,
each retry loop and the drain by their deadlines. Everything is on loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from notifyhub.observability.lag import LagMeter
from notifyhub.providers.sink import sink_keys
from tests.support.api import Tenant
from tests.support.stack import NativeStack, Services
from tests.support.workers import Worker

# How long the client keeps retrying one notification before it gives up on it.
CLIENT_DEADLINE_SECONDS = 90.0
# A request that hangs longer than this is retried (the API's own publish timeout is 10 s).
REQUEST_TIMEOUT_SECONDS = 15.0
RETRY_PAUSE_SECONDS = 0.5
# How long every accepted notification gets to reach its final state after the stream.
DRAIN_SECONDS = 120.0
FINAL = ("delivered", "failed", "dropped", "cancelled", "digested")
# The topics a stuck notification is looked for on, in pipeline order (the stream's are
# SMS, normal lane).
TRACED_STAGES = ("intake", "held", "enrich", "send.sms")
# How many of the not-final ones are traced one by one.
EXAMPLES_TRACED = 5


@dataclass
class StreamReport:
    """What became of a stream of notifications."""

    fault: str
    sent: int = 0
    accepted: int = 0
    answers: Counter[str] = field(default_factory=Counter)  # status code, or "unreachable"
    delivered: int = 0
    not_final: int = 0
    stuck: dict[str, int] = field(default_factory=dict)  # the not-final ones, by status
    # Where some of the not-final ones are in Kafka: record offsets and the group's commits.
    traces: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    repeats: int = 0  # sends repeated that the sink's dedupe key kept from being recorded twice
    seconds: float = 0.0
    accepted_ids: set[str] = field(default_factory=set)

    def summary(self) -> str:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(self.answers.items()))
        return (
            f"{self.fault}: sent {self.sent}, accepted {self.accepted}, delivered {self.delivered}, "
            f"lost {self.lost}, duplicated {self.duplicated}, repeats absorbed {self.repeats} "
            f"(answers {answers}; {self.seconds:.0f}s)"
            + (f"; not final: {self.stuck}" if self.stuck else "")
            + "".join(f"\n  {trace}" for trace in self.traces)
        )


async def submit(
    http: aiohttp.ClientSession,
    workers: Sequence[Worker],
    tenant: Tenant,
    index: int,
    run: str,
    report: StreamReport,
    body: dict[str, Any] | None = None,
) -> None:
    """Send one notification (``body``; by default one of its own recipient) until it is
    accepted or answered otherwise than 503."""
    body = body or {
        "channel": "sms",
        "recipient_id": f"{run}-{index}",
        "recipient_address": "+15550100",
        "payload": {"body": f"fault stream {run} #{index}"},
        "idempotency_key": f"{run}-{index}",
    }
    deadline = time.monotonic() + CLIENT_DEADLINE_SECONDS
    tries = 0
    while time.monotonic() < deadline:
        worker = workers[(index + tries) % len(workers)]
        tries += 1
        try:
            async with http.post(
                f"{worker.base_url}/api/v1/notifications",
                json=body,
                headers=tenant.headers,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            ) as response:
                report.answers[str(response.status)] += 1
                if response.status == 202:
                    report.accepted_ids.add((await response.json())["data"]["id"])
                    return
                if response.status != 503:
                    return  # anything else is an answer the test asserts against
        except (aiohttp.ClientError, TimeoutError):
            report.answers["unreachable"] += 1
        await asyncio.sleep(RETRY_PAUSE_SECONDS)


async def run_stream(
    *,
    fault: str,
    http: aiohttp.ClientSession,
    workers: Sequence[Worker],
    tenant: Tenant,
    database_url: str,
    kafka_bootstrap_servers: str,
    sink: redis.Redis,
    count: int,
    rate: float,
    during: Callable[[], Awaitable[None]],
) -> StreamReport:
    """Send the stream while ``during`` runs; wait for the outcome; account for it."""
    report = StreamReport(fault=fault, sent=count)
    run = uuid.uuid4().hex[:8]
    started = time.monotonic()

    async def stream() -> None:
        tasks = []
        for index in range(count):
            tasks.append(asyncio.create_task(submit(http, workers, tenant, index, run, report)))
            await asyncio.sleep(1 / rate)
        await asyncio.gather(*tasks)

    await asyncio.gather(stream(), during())
    report.accepted = len(report.accepted_ids)
    report.delivered, report.stuck = await _drain(database_url, report.accepted_ids)
    report.not_final = sum(report.stuck.values())
    if report.not_final:
        report.traces = await _where_in_kafka(
            kafka_bootstrap_servers,
            workers[0].topic_prefix,
            await _not_final_ids(database_url, report.accepted_ids),
        )
        report.traces.extend(f"worker log: {worker.log_path}" for worker in workers)
    sent = await _sunk(sink, workers[0].sink_key, report.accepted_ids)
    report.lost = sum(1 for notification_id in report.accepted_ids if sent[notification_id] == 0)
    report.duplicated = sum(copies - 1 for copies in sent.values() if copies > 1)
    report.repeats = int(await sink.get(sink_keys(workers[0].topic_prefix).repeats) or 0)
    report.seconds = time.monotonic() - started
    print(report.summary())
    return report


async def _drain(database_url: str, ids: set[str]) -> tuple[int, dict[str, int]]:
    """(delivered, the rest by status) once every notification is final, or at the
    deadline (a notification without a row counts as "absent")."""
    wanted = [uuid.UUID(i) for i in ids]
    deadline = time.monotonic() + DRAIN_SECONDS
    delivered = 0
    while True:
        try:
            connection = await asyncpg.connect(database_url, timeout=5)
            try:
                rows = await connection.fetch(
                    "SELECT status, count(*) AS n FROM notifications WHERE id = ANY($1) GROUP BY status",
                    wanted,
                )
            finally:
                await connection.close()
        except (OSError, asyncpg.PostgresError):
            rows = []
        counts = {row["status"]: row["n"] for row in rows}
        delivered = counts.get("delivered", 0)
        final = sum(counts.get(s, 0) for s in FINAL)
        if final == len(wanted) or time.monotonic() > deadline:
            rest = {status: n for status, n in counts.items() if status not in FINAL}
            if sum(counts.values()) < len(wanted):
                rest["absent"] = len(wanted) - sum(counts.values())
            return delivered, rest
        await asyncio.sleep(0.5)


async def _not_final_ids(database_url: str, ids: set[str], limit: int = 500) -> list[str]:
    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT id FROM notifications WHERE id = ANY($1) AND NOT (status = ANY($2)) LIMIT $3",
            [uuid.UUID(i) for i in ids],
            list(FINAL),
            limit,
        )
    finally:
        await connection.close()
    return [str(row["id"]) for row in rows]


async def _where_in_kafka(bootstrap_servers: str, deployment: str, ids: list[str]) -> list[str]:
    """For each of ``ids``: its records on the stage topics, each with the offset the
    deployment's group has committed for that partition (past the record: it was skipped)."""
    topics = [f"{deployment}.{stage}" for stage in TRACED_STAGES]
    # Without a group, a consumer takes every partition of the topics it subscribes to.
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    meter = LagMeter(bootstrap_servers, group_id=deployment)
    await consumer.start()
    try:
        partitions = list(consumer.assignment())
        if not partitions:
            return [f"{i}: the stage topics are unknown to the broker" for i in ids]
        ends = await consumer.end_offsets(partitions)
        found: dict[str, list[tuple[TopicPartition, int]]] = {i: [] for i in ids}
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                for record in records:
                    record_id = _id_in(record.value)
                    if record_id in found:
                        found[record_id].append((tp, record.offset))
        committed = {
            TopicPartition(lag.topic, lag.partition): lag.committed
            for lag in await meter.measure(partitions)
        }
    finally:
        await consumer.stop()
        await meter.close()

    def stage(tp: TopicPartition) -> str:
        return f"{tp.topic.removeprefix(f'{deployment}.')}[{tp.partition}]"

    def place(tp: TopicPartition, offset: int) -> str:
        return f"{stage(tp)}@{offset} (group at {committed.get(tp)})"

    # Where each one got to last, per partition: a stalled partition shows as one line.
    last_seen: dict[TopicPartition, list[int]] = defaultdict(list)
    for places in found.values():
        if places:
            tp, offset = max(places, key=lambda at: topics.index(at[0].topic))
            last_seen[tp].append(offset)
    by_partition = [
        f"{stage(tp)}: {len(offsets)} not final, last seen at offsets {min(offsets)} to "
        f"{max(offsets)} (group at {committed.get(tp)})"
        for tp, offsets in sorted(last_seen.items())
    ]
    examples = [
        f"{i}: " + (", ".join(place(*at) for at in found[i]) or "no record")
        for i in ids[:EXAMPLES_TRACED]
    ]
    return by_partition + examples


def _id_in(value: bytes | None) -> str | None:
    try:
        decoded = json.loads(value or b"")
    except ValueError:
        return None  # poison
    return decoded.get("id") if isinstance(decoded, dict) else None


async def _sunk(sink: redis.Redis, key: str, ids: set[str]) -> Counter[str]:
    """How many times the sink recorded each of ``ids``."""
    copies: Counter[str] = Counter({notification_id: 0 for notification_id in ids})
    for raw in await sink.lrange(key, 0, -1):
        notification_id = json.loads(raw)["notification_id"]
        if notification_id in copies:
            copies[notification_id] += 1
    return copies


@dataclass
class FaultKit:
    """What a fault test works with: the stack it breaks, workers it starts, a tenant, the
    sink's Redis and an HTTP client."""

    stack: NativeStack
    services: Services
    start_workers: Callable[..., Awaitable[list[Worker]]]
    tenant: Tenant
    sink: redis.Redis
    http: aiohttp.ClientSession
