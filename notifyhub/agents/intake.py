"""Intake: accept what Kafka producers write, in batches, and store it.

Each record is checked (``cores.intake.parse``): one that cannot be a notification (not
JSON, wrong shape, unknown tenant, unknown template, no address, nothing to send) goes to
the dead-letter topic with the reason, and the partition keeps flowing. The good ones are
completed (template id, address), then stored in one transaction per batch, where
PostgreSQL decides idempotency (the key's unique row, as for the HTTP API: the same key
from HTTP and from Kafka is one notification). Each stored notification goes on to enrich
(``queued``) or to the held stage until its ``scheduled_at`` (``scheduled``), announced on
the delivery events topic.

Order of effects: PostgreSQL (notifications, keys, the first status and its log row),
then the records produced, then the acknowledgement. A record read again after a worker
died keeps its id (its own, or one derived from where it sits) and is passed on again
unless its notification is final; what follows drops the copy (the send stage claims a
notification once).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import faust
from opentelemetry.trace import Span

from notifyhub.agents.kit import batches, dead_letters, guarded
from notifyhub.agents.reliability import letter_for
from notifyhub.app import emit, intake_topics, lane_agents, resources, settings, topics
from notifyhub.cores.entry import entry_event, entry_records
from notifyhub.cores.intake import Rejected, as_notification, parse, tenant_hint
from notifyhub.cores.records import Outgoing, event_record
from notifyhub.db import notifications, tenants
from notifyhub.model.messages import DeadLetter, DeliveryEvent, IntakeMessage
from notifyhub.model.status import Status
from notifyhub.observability import tracing
from notifyhub.observability.metrics import NOTIFICATIONS_ENQUEUED
from notifyhub.runtime import clock
from notifyhub.runtime.outages import through_outages
from notifyhub.services.resolve import Unresolvable, resolve

logger = logging.getLogger(__name__)

# Tenants are never deleted while their notifications flow, so a tenant once seen
# need not be looked up again by this process.
_known_tenants: set[uuid.UUID] = set()


def _letter(event: faust.EventT[bytes], reason: str) -> DeadLetter:
    return letter_for(event, reason, tenant_id=tenant_hint(event.value))


async def _unknown_tenants(tenant_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    unseen = tenant_ids - _known_tenants
    if unseen:
        found = await tenants.existing(await resources.db(), unseen)
        _known_tenants.update(found)
        return unseen - found
    return set()


async def _completed(
    accepted: list[tuple[faust.EventT[bytes], IntakeMessage]],
) -> tuple[list[tuple[faust.EventT[bytes], IntakeMessage]], list[Outgoing], list[DeadLetter]]:
    """The messages with their template id and address looked up; a message naming what
    the tenant does not have is a dead letter, or fails when it was stored before (a
    record read again after its template went away)."""
    pool = await resources.db()
    complete: list[tuple[faust.EventT[bytes], IntakeMessage]] = []
    failed: list[Outgoing] = []
    letters: list[DeadLetter] = []
    for event, message in accepted:
        try:
            complete.append((event, await resolve(pool, message.tenant_id, message)))
        except Unresolvable as exc:
            if await notifications.exists(pool, message.tenant_id, message.assigned_id):
                known = as_notification(message)
                report = DeliveryEvent.about(known, Status.FAILED, reason=str(exc))
                failed.append(event_record(topics.delivery_events, report))
            else:
                letters.append(_letter(event, f"invalid intake message: {exc}"))
    return complete, failed, letters


async def _accept(events: Sequence[faust.EventT[bytes]]) -> None:
    with tracing.batch_spans(events, "intake") as traces:
        await _accept_traced(events, dict(zip(events, traces, strict=True)))


async def _accept_traced(
    events: Sequence[faust.EventT[bytes]], traces: dict[faust.EventT[bytes], Span | None]
) -> None:
    now = clock.now()
    accepted: list[tuple[faust.EventT[bytes], IntakeMessage]] = []
    letters: list[DeadLetter] = []
    for event in events:
        record = event.message
        try:
            accepted.append(
                (event, parse(event.value, f"{record.topic}:{record.partition}:{record.offset}", now))
            )
        except Rejected as exc:
            letters.append(_letter(event, str(exc)))
    unknown = await through_outages(
        lambda: _unknown_tenants({m.tenant_id for _, m in accepted}), "intake: find tenants"
    )
    for event, message in accepted:
        if message.tenant_id in unknown:
            letters.append(_letter(event, f"unknown tenant {message.tenant_id}"))
    accepted = [(e, m) for e, m in accepted if m.tenant_id not in unknown]
    records: list[Outgoing] = []
    if any(m.needs_lookup for _, m in accepted):
        accepted, records, unresolved = await through_outages(
            lambda: _completed(accepted), "intake: resolve templates and addresses"
        )
        letters += unresolved
    entries = [(event, as_notification(m)) for event, m in accepted]
    announced = [entry_event(n, now) for _, n in entries]
    if entries:
        messages = [m for _, m in accepted]
        pool = await resources.db()
        passed = await through_outages(
            lambda: notifications.store_accepted(
                pool, announced, messages, settings.idempotency_retention_seconds
            ),
            f"intake: store {len(messages)} notifications",
        )
        for (event, notification), entry in zip(entries, announced, strict=True):
            if notification.id not in passed:
                logger.info(
                    "notification %s (tenant %s) repeats idempotency key %r, or is final; not sent",
                    notification.id,
                    notification.tenant_id,
                    notification.idempotency_key,
                )
                continue
            NOTIFICATIONS_ENQUEUED.labels(channel=notification.channel.value).inc()
            tracing.annotate(
                traces[event],
                **{
                    "notifyhub.tenant_id": notification.tenant_id,
                    "notifyhub.notification_id": notification.id,
                },
            )
            records += entry_records(
                topics,
                notification,
                entry,
                tracing.passed_on(event.headers, traces[event]),
                # Stored before (by the HTTP API, or a record read again): its first status
                # is for the delivery events stage to write.
                persisted=passed[notification.id],
            )
    await dead_letters(letters)
    await emit(records)


@lane_agents(intake_topics, "intake")
async def intake(stream: faust.StreamT[bytes]) -> None:
    async for events in batches(stream):
        await guarded(events, _accept, "intake")
