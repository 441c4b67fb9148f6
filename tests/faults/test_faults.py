"""Nothing accepted is lost when a worker, the broker, PostgreSQL or Redis fails, or when
poison arrives: each test streams notifications through two workers while one thing
breaks, then accounts for every one (``tests/support/faults.py``). The sink dedupes by notification
id, as a provider with idempotency keys would, so nothing may be recorded twice; the
repeated sends it absorbed are printed. (SES, Twilio and FCM take no such key: there a
send interrupted after the provider call and before its outcome is recorded can happen
twice.)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from tests.support.api import eventually
from tests.support.faults import FaultKit, StreamReport, run_stream
from tests.support.stack import NativeStack
from tests.support.workers import Worker

pytestmark = pytest.mark.faults

# 8 seconds of traffic at 30 a second; the fault starts 2 s in.
COUNT = 240
RATE = 30.0
FAULT_AFTER_SECONDS = 2.0
# How long a service stays down.
OUTAGE_SECONDS = 5.0


def assert_each_delivered_once(report: StreamReport) -> None:
    assert report.answers.get("500", 0) == 0, report.summary()
    assert set(report.answers) <= {"202", "503", "unreachable"}, report.summary()
    assert report.accepted == report.sent, f"the client gave up on some: {report.summary()}"
    assert report.not_final == 0, report.summary()
    assert report.delivered == report.accepted, report.summary()
    assert report.lost == 0, report.summary()
    assert report.duplicated == 0, report.summary()


async def _stream(
    kit: FaultKit, fault: str, workers: list[Worker], during: Callable[[], Awaitable[None]]
) -> StreamReport:
    return await run_stream(
        fault=fault,
        http=kit.http,
        workers=workers,
        tenant=kit.tenant,
        database_url=kit.services.database_url,
        kafka_bootstrap_servers=kit.services.kafka_bootstrap_servers,
        sink=kit.sink,
        count=COUNT,
        rate=RATE,
        during=during,
    )


def _outage(stack: NativeStack, service: str) -> Callable[[], Awaitable[None]]:
    async def outage() -> None:
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        await asyncio.to_thread(stack.stop, service)
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(stack.start, service)

    return outage


async def test_a_worker_killed_mid_stream_and_restarted_loses_nothing(kit: FaultKit) -> None:
    workers = await kit.start_workers(2)

    async def kill_and_restart() -> None:
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        workers[1].kill()
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(workers[1].restart)

    report = await _stream(kit, "worker SIGKILL", workers, kill_and_restart)
    assert_each_delivered_once(report)
    assert report.answers["unreachable"] > 0, "the killed worker was asked while it was down"


async def test_a_worker_stopped_with_sigterm_mid_stream_finishes_what_it_started(
    kit: FaultKit,
) -> None:
    workers = await kit.start_workers(2)

    async def stop_and_restart() -> None:
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        await asyncio.to_thread(workers[1].stop)
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(workers[1].restart)

    report = await _stream(kit, "worker SIGTERM", workers, stop_and_restart)
    assert_each_delivered_once(report)


async def test_a_worker_added_mid_stream_takes_partitions_without_loss(kit: FaultKit) -> None:
    workers = await kit.start_workers(1)

    async def add_a_worker() -> None:
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        workers.extend(await kit.start_workers(1, deployment=workers[0].topic_prefix))

    report = await _stream(kit, "worker added", workers, add_a_worker)
    assert_each_delivered_once(report)
    assert len(workers) == 2


@pytest.mark.parametrize("service", ["kafka", "postgres", "redis"])
async def test_a_service_outage_mid_stream_loses_nothing(service: str, kit: FaultKit) -> None:
    workers = await kit.start_workers(2)
    fault = f"{service} down {OUTAGE_SECONDS:.0f}s"
    report = await _stream(kit, fault, workers, _outage(kit.stack, service))
    assert_each_delivered_once(report)


POISON = [
    b"not json at all",
    b"{}",
    json.dumps({"v": 1, "channel": "carrier-pigeon"}).encode(),
    b"\xff\xfe binary",
]
POISON_ROUNDS = 5


async def test_poison_messages_between_good_ones_go_to_dead_letters(kit: FaultKit) -> None:
    workers = await kit.start_workers(2)
    topics = [workers[0].topic(name) for name in ("intake", "enrich", "send.sms", "delivery-events")]

    async def poison() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kit.services.kafka_bootstrap_servers)
        await producer.start()
        try:
            for round_ in range(POISON_ROUNDS):
                await asyncio.sleep(1)
                for topic in topics:
                    for value in POISON:
                        await producer.send_and_wait(topic, value, key=f"poison-{round_}".encode())
        finally:
            await producer.stop()

    report = await _stream(kit, "poison", workers, poison)
    assert_each_delivered_once(report)
    poisoned = POISON_ROUNDS * len(POISON)

    async def lettered() -> dict[str, int] | None:
        connection = await asyncpg.connect(kit.services.database_url)
        try:
            rows = await connection.fetch(
                "SELECT source_topic, count(*) AS n FROM dead_letters "
                "WHERE source_topic = ANY($1) GROUP BY source_topic",
                topics,
            )
        finally:
            await connection.close()
        per_topic = {row["source_topic"]: row["n"] for row in rows}
        return per_topic if all(per_topic.get(t, 0) == poisoned for t in topics) else None

    # Every poison message, on every stage's topic, is a dead letter with its reason.
    await eventually(lettered, f"{poisoned} dead letters on each of {topics}")
