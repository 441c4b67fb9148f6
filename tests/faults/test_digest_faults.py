"""Digests under concurrency, a crash and a rebalance: exactly one digest per window.

Clients send items for a few recipients, from many concurrent requests spread over the
workers, while a worker is killed (or one is added) in the middle of open windows. Then
every accepted item must be ``digested`` into exactly one delivered digest, and each
digest sent once: no item lost, none in two digests, no window sent twice. The report
printed is the one the closing note quotes.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from tests.support.faults import FaultKit, StreamReport, submit
from tests.support.workers import Worker

pytestmark = pytest.mark.faults

RECIPIENTS = 8
# 10 s of items at 30 a second; windows of 3 s, so several close and open meanwhile.
COUNT = 300
RATE = 30.0
WINDOW_SECONDS = 3
FAULT_AFTER_SECONDS = 3.0
OUTAGE_SECONDS = 5.0
DRAIN_SECONDS = 120.0


@dataclass
class DigestReport:
    fault: str
    accepted: int = 0
    digested: int = 0
    digests: int = 0
    digests_delivered: int = 0
    lost: int = 0
    in_two_digests: int = 0
    digests_sent_twice: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"[{self.fault}] {self.accepted} items accepted, {self.digested} digested, "
            f"{self.digests} digests ({self.digests_delivered} delivered); "
            f"lost {self.lost}, in two digests {self.in_two_digests}, "
            f"digests sent twice {self.digests_sent_twice}; {self.seconds:.1f}s"
        )


async def _stream_items(
    kit: FaultKit, fault: str, workers: list[Worker], during: Callable[[], Awaitable[None]]
) -> DigestReport:
    run = uuid.uuid4().hex[:8]
    recipients = [f"{run}-r{n}" for n in range(RECIPIENTS)]
    stream = StreamReport(fault=fault, sent=COUNT)
    started = time.monotonic()

    async def send_all() -> None:
        tasks = []
        for index in range(COUNT):
            body = {
                # In-app: its default cap (50 an hour) lets every digest through; SMS's
                # (3 an hour) would rightly drop a recipient's fourth.
                "channel": "inapp",
                "recipient_id": recipients[index % RECIPIENTS],
                "payload": {"body": f"item {index}"},
                "idempotency_key": f"{run}-{index}",
                "digest": {"key": "activity", "window_seconds": WINDOW_SECONDS},
            }
            tasks.append(
                asyncio.create_task(submit(kit.http, workers, kit.tenant, index, run, stream, body))
            )
            await asyncio.sleep(1 / RATE)
        await asyncio.gather(*tasks)

    await asyncio.gather(send_all(), during())
    report = DigestReport(fault=fault, accepted=len(stream.accepted_ids))
    rows = await _settled(kit.services.database_url, stream.accepted_ids, recipients)
    items = {str(r["id"]): r for r in rows if r["type"] != "digest:activity"}
    digests = [r for r in rows if r["type"] == "digest:activity"]
    report.digested = sum(1 for r in items.values() if r["status"] == "digested")
    report.digests = len(digests)
    report.digests_delivered = sum(1 for r in digests if r["status"] == "delivered")
    collected = Counter(i["id"] for d in digests for i in json.loads(d["payload"])["items"])
    report.lost = sum(1 for item_id in stream.accepted_ids if collected[item_id] == 0)
    report.in_two_digests = sum(1 for n in collected.values() if n > 1)
    sent = Counter(
        json.loads(raw)["notification_id"] for raw in await kit.sink.lrange(workers[0].sink_key, 0, -1)
    )
    report.digests_sent_twice = sum(1 for d in digests if sent[str(d["id"])] > 1)
    report.seconds = time.monotonic() - started
    print(report.summary())
    assert stream.answers.get("500", 0) == 0, stream.summary()
    assert report.accepted == COUNT, stream.summary()
    return report


async def _settled(database_url: str, item_ids: set[str], recipients: list[str]) -> list[asyncpg.Record]:
    """The items and digests of the run once every one is final (or at the deadline)."""
    deadline = time.monotonic() + DRAIN_SECONDS
    while True:
        connection = await asyncpg.connect(database_url, timeout=5)
        try:
            rows = await connection.fetch(
                "SELECT id, type, status, payload FROM notifications WHERE id = ANY($1::uuid[]) "
                "OR (recipient_id = ANY($2::text[]) AND type = 'digest:activity')",
                [uuid.UUID(i) for i in item_ids],
                recipients,
            )
        finally:
            await connection.close()
        items_done = sum(1 for r in rows if str(r["id"]) in item_ids and r["status"] == "digested")
        digests = [r for r in rows if r["type"] == "digest:activity"]
        collected = sum(json.loads(d["payload"])["count"] for d in digests)
        settled = all(d["status"] == "delivered" for d in digests) and collected >= len(item_ids)
        if (items_done == len(item_ids) and settled) or time.monotonic() > deadline:
            return list(rows)
        await asyncio.sleep(0.5)


def assert_one_digest_per_window(report: DigestReport) -> None:
    assert report.digested == report.accepted, report.summary()
    assert report.lost == 0, report.summary()
    assert report.in_two_digests == 0, report.summary()
    assert report.digests_sent_twice == 0, report.summary()
    assert report.digests_delivered == report.digests, report.summary()
    # Windows of 3 s over a 10 s stream: a few per recipient, never one per item.
    assert RECIPIENTS <= report.digests < report.accepted / 4, report.summary()


async def test_a_worker_killed_mid_window_sends_each_window_once(kit: FaultKit) -> None:
    workers = await kit.start_workers(2)

    async def kill_and_restart() -> None:
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        workers[1].kill()
        await asyncio.sleep(OUTAGE_SECONDS)
        await asyncio.to_thread(workers[1].restart)

    assert_one_digest_per_window(
        await _stream_items(kit, "digest, worker SIGKILL", workers, kill_and_restart)
    )


async def test_a_rebalance_mid_window_sends_each_window_once(kit: FaultKit) -> None:
    workers = await kit.start_workers(1)

    async def add_a_worker() -> None:
        await asyncio.sleep(FAULT_AFTER_SECONDS)
        workers.extend(await kit.start_workers(1, deployment=workers[0].topic_prefix))

    assert_one_digest_per_window(await _stream_items(kit, "digest, worker added", workers, add_a_worker))
