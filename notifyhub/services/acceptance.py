"""Accepting notifications for the HTTP API, in group commits, with a bound on waiting.

A 202 means the notification is stored in PostgreSQL and acknowledged by Kafka. Doing
that per request costs a transaction (a WAL flush) and a producer round trip per request;
here concurrent requests share them: requests arriving within ``GROUP_WINDOW_SECONDS``
of each other are stored in one transaction (idempotency keys claimed, rows inserted),
then their records (the ``queued``/``scheduled`` event, and the notification to enrich or
its hold) are produced together, and every request of the group is answered once Kafka
acknowledged all of them. A few groups are in flight at once, so the next group gathers
while one waits for the broker.

Past capacity, requests are refused at once (``Overloaded``: a 503 with ``Retry-After``)
instead of waiting: when more than ``MAX_WAITING`` notifications wait for a group, the
oldest has waited more than ``MAX_WAIT_SECONDS``, or the worker's event loop has been
running late for a while (``LoopLag``: requests then queue before any handler sees them).

With PostgreSQL unavailable, requests go to the intake topic instead (the intake stage
stores them once PostgreSQL is back); with Kafka unavailable, the group's requests fail
(``QueueUnavailable``) and the rows they stored without an idempotency key are deleted
(with a key the row stays: a retry with the key finds it and sends it again).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from notifyhub.cores.entry import entry_event, entry_records
from notifyhub.cores.intake import as_notification
from notifyhub.cores.records import Headers, Outgoing
from notifyhub.db import notifications
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.messages import IntakeMessage
from notifyhub.model.status import Status
from notifyhub.observability.metrics import NOTIFICATIONS_ENQUEUED
from notifyhub.runtime.outages import OUTAGES
from notifyhub.runtime.resources import Resources
from notifyhub.services.publishing import PUBLISH_WITHIN_SECONDS, Publish, QueueUnavailable

logger = logging.getLogger(__name__)

# How long the first request of a group waits for others to join it: enough for a burst
# of concurrent requests to share a transaction, short beside a request's own latency.
GROUP_WINDOW_SECONDS = 0.002
# At most this many notifications per group (a bulk request larger than this is a group
# of its own).
MAX_GROUP_SIZE = 1000
# Groups stored and produced at the same time; more would only queue in the pool.
MAX_GROUPS_IN_FLIGHT = 4
# Refuse new requests while this many notifications wait for a group...
MAX_WAITING = 2000
# ...or while the oldest one waiting has waited this long: a client is better served by a
# quick 503 and a retry than by a request that waits for seconds.
MAX_WAIT_SECONDS = 0.25
# Refuse while the event loop has run at least this late for LOOP_LAG_SAMPLES samples in
# a row, one every LOOP_LAG_INTERVAL_SECONDS: a loop that late makes every request wait
# before its handler runs. In a row, so that one long step (a table's recovery, a large
# batch) does not refuse anybody.
MAX_LOOP_LAG_SECONDS = 0.1
LOOP_LAG_INTERVAL_SECONDS = 0.05
LOOP_LAG_SAMPLES = 4
# Seconds a client is told to wait before retrying a refused request.
RETRY_AFTER_SECONDS = 1

# A notification as the HTTP API shows it.
ApiNotification = dict[str, Any]


class LoopLag:
    """How late this worker's event loop runs what is due: a task asks to wake every
    ``LOOP_LAG_INTERVAL_SECONDS`` and notes how late it woke."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=LOOP_LAG_SAMPLES)
        self._task: asyncio.Task[None] | None = None

    def late(self) -> bool:
        """Whether each of the last samples was later than ``MAX_LOOP_LAG_SECONDS``."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._measure(), name="loop-lag")
        return len(self._recent) == LOOP_LAG_SAMPLES and min(self._recent) > MAX_LOOP_LAG_SECONDS

    async def _measure(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(LOOP_LAG_INTERVAL_SECONDS)
            self._recent.append(loop.time() - asked - LOOP_LAG_INTERVAL_SECONDS)


class Overloaded(Exception):
    """Too many requests are waiting: refuse this one (retry after ``RETRY_AFTER_SECONDS``)."""


class KeyInProgress(Exception):
    """The idempotency key belongs to a request whose notification is not stored yet."""


@dataclass
class _Request:
    messages: list[IntakeMessage]
    headers: Headers
    arrived: float
    answer: asyncio.Future[list[ApiNotification]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Acceptance:
    """The worker's HTTP intake: ``accept`` one request's notifications."""

    def __init__(self, resources: Resources, topics: TopicNames, publish: Publish) -> None:
        self._resources = resources
        self._topics = topics
        self._publish = publish
        self._waiting: deque[_Request] = deque()
        self._waiting_count = 0
        self._arrived = asyncio.Event()
        self._in_flight = asyncio.Semaphore(MAX_GROUPS_IN_FLIGHT)
        self._loop_task: asyncio.Task[None] | None = None
        self._groups: set[asyncio.Task[None]] = set()
        self._lag = LoopLag()

    def check_load(self) -> None:
        """Raise ``Overloaded`` when a new request would wait too long."""
        if self._waiting_count >= MAX_WAITING or self._lag.late():
            raise Overloaded
        if self._waiting and time.monotonic() - self._waiting[0].arrived > MAX_WAIT_SECONDS:
            raise Overloaded

    async def accept(
        self, messages: list[IntakeMessage], headers: Headers = ()
    ) -> list[ApiNotification]:
        """Store and enqueue the notifications (resolved already); each one as the API
        shows it."""
        self.check_load()
        request = _Request(messages, headers, time.monotonic())
        self._waiting.append(request)
        self._waiting_count += len(messages)
        self._arrived.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._gather_groups(), name="http-acceptance")
        return await request.answer

    async def _gather_groups(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:
                await asyncio.sleep(GROUP_WINDOW_SECONDS)
                await self._in_flight.acquire()
                group = self._take_group()
                task = asyncio.create_task(self._run(group))
                self._groups.add(task)
                task.add_done_callback(self._groups.discard)

    def _take_group(self) -> list[_Request]:
        group: list[_Request] = []
        size = 0
        while self._waiting and (not group or size + len(self._waiting[0].messages) <= MAX_GROUP_SIZE):
            request = self._waiting.popleft()
            group.append(request)
            size += len(request.messages)
        self._waiting_count -= size
        return group

    async def _run(self, group: list[_Request]) -> None:
        try:
            answers = await self._commit(group)
        except Exception as exc:
            for request in group:
                if not request.answer.done():
                    request.answer.set_exception(exc)
        else:
            for request, answer in zip(group, answers, strict=True):
                if isinstance(answer, Exception):
                    request.answer.set_exception(answer)
                else:
                    request.answer.set_result(answer)
        finally:
            self._in_flight.release()

    async def _commit(self, group: list[_Request]) -> list[list[ApiNotification] | Exception]:
        messages = [m for request in group for m in request.messages]
        try:
            pool = await self._resources.db()
            rows, owners = await _store(
                pool, messages, self._resources.settings.idempotency_retention_seconds
            )
        except OUTAGES:
            logger.warning("PostgreSQL unavailable: %d notifications go to intake", len(messages))
            return await self._through_intake(group)
        now = time.time()
        records: list[Outgoing] = []
        created: set[uuid.UUID] = set()
        sent: set[uuid.UUID] = set()
        answers: list[list[ApiNotification] | Exception] = []
        for request in group:
            answered: list[ApiNotification] = []
            for message in request.messages:
                message_id = message.assigned_id
                owner = owners.get(message_id, message_id)
                row = rows.get(owner)
                if row is None:
                    answered = []
                    break
                fresh = owner == message_id
                if fresh:
                    created.add(message_id)
                # A row still pending may not have reached Kafka (the request that made it
                # gave up waiting): it is sent again; what follows takes one copy.
                if owner not in sent and (fresh or row["status"] == Status.PENDING.value):
                    sent.add(owner)
                    stored = message if fresh else notifications.as_intake_message(row)
                    notification = as_notification(stored)
                    event = entry_event(notification, now)
                    records += entry_records(
                        self._topics, notification, event, request.headers, persisted=False
                    )
                # A new row's payload is the message's: no need to decode it back.
                payload = message.payload if fresh else None
                answered.append(notifications.as_api_dict(row, payload))
            answers.append(answered if answered else KeyInProgress())
        try:
            await self._publish(records, PUBLISH_WITHIN_SECONDS)
        except Exception:
            logger.exception("%d notifications refused: Kafka unavailable", len(created))
            keyless = [m for m in messages if m.id in created and not m.idempotency_key]
            if keyless:
                await _forget(pool, keyless)
            raise QueueUnavailable from None
        for message in messages:
            if message.id in created:
                NOTIFICATIONS_ENQUEUED.labels(channel=message.channel.value).inc()
        return answers

    async def _through_intake(self, group: list[_Request]) -> list[list[ApiNotification] | Exception]:
        """PostgreSQL is down: Kafka alone makes the notifications durable."""
        records = [
            Outgoing(
                self._topics.intake(message.priority),
                message.recipient_key,
                message.to_bytes(),
                request.headers,
            )
            for request in group
            for message in request.messages
        ]
        try:
            await self._publish(records, PUBLISH_WITHIN_SECONDS)
        except Exception:
            logger.exception("%d notifications refused: Kafka unavailable", len(records))
            raise QueueUnavailable from None
        return [[_as_pending(m) for m in request.messages] for request in group]


async def _store(
    pool: asyncpg.Pool, messages: list[IntakeMessage], retention_seconds: float
) -> tuple[dict[uuid.UUID, asyncpg.Record], dict[uuid.UUID, uuid.UUID]]:
    """Store the group in one transaction: each key's owner, and the rows (new ones and those
    the keys stand for), by id. ``owners`` maps a message whose key another holds to it."""
    if not any(m.idempotency_key for m in messages):
        # One statement: no transaction of its own to open and commit.
        return await notifications.insert_pending(pool, messages), {}
    async with pool.acquire() as conn, conn.transaction():
        claimed = await notifications.claim_idempotency_keys(conn, messages, retention_seconds)
        owners = {
            m.assigned_id: claimed[(m.tenant_id, m.idempotency_key)]
            for m in messages
            if m.idempotency_key and claimed[(m.tenant_id, m.idempotency_key)] != m.id
        }
        rows = await notifications.insert_pending(conn, [m for m in messages if m.id not in owners])
        elsewhere = {
            (m.tenant_id, owner)
            for m in messages
            if (owner := owners.get(m.assigned_id)) and owner not in rows
        }
        rows.update(await notifications.get_many(conn, list(elsewhere)))
    return rows, owners


async def _forget(pool: asyncpg.Pool, messages: list[IntakeMessage]) -> None:
    by_tenant: dict[uuid.UUID, list[uuid.UUID]] = {}
    for message in messages:
        by_tenant.setdefault(message.tenant_id, []).append(message.assigned_id)
    for tenant_id, ids in by_tenant.items():
        await notifications.delete_many(pool, tenant_id, ids)


def _as_pending(message: IntakeMessage) -> dict[str, Any]:
    """The notification as it will be stored, for an answer given while PostgreSQL is down."""
    now = datetime.now(UTC)
    body = message.model_dump(exclude={"v"})
    return {
        **body,
        "status": Status.PENDING,
        "status_reason": None,
        "created_at": now,
        "updated_at": now,
    }
