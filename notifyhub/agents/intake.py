"""Intake: check every notification request a Kafka producer wrote, and pass it on.

A message that cannot be a notification (not JSON, wrong shape, unknown tenant,
unknown template, no address, nothing to send) goes to the dead-letter topic with the
reason; the partition keeps flowing. A good one is completed (template id, address)
and re-keyed by tenant and idempotency key onto the accepted topic, where duplicates
are decided. The HTTP API checks its requests itself and writes to accepted directly.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from notifyhub import tracing
from notifyhub.agents.accept import accepted_key
from notifyhub.agents.reliability import Rejected, dead_letter, letter_for, through_outages
from notifyhub.app import (
    accepted_topics,
    delivery_events_topic,
    enqueue,
    intake_topics,
    lane_agents,
    resources,
)
from notifyhub.db import notifications, tenants
from notifyhub.messages import (
    KAFKA_ORIGIN_NAMESPACE,
    DeadLetter,
    DeliveryEvent,
    IntakeMessage,
    Notification,
)
from notifyhub.resolve import Unresolvable, resolve
from notifyhub.status import Status

logger = logging.getLogger(__name__)

# Tenants are never deleted while their notifications flow, so a tenant once seen
# need not be looked up again by this process.
_known_tenants: set[uuid.UUID] = set()


def parse(raw: bytes | None, origin: str) -> IntakeMessage:
    """The intake message in ``raw``, with an id derived from ``origin`` when it has none."""
    if not raw:
        raise Rejected("empty message")
    try:
        message = IntakeMessage.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'message'}: "
            f"{'unknown field' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise Rejected(f"invalid intake message: {problems}") from None
    problems = message.unsupported_fields(datetime.now(UTC))
    if problems:
        raise Rejected("invalid intake message: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    if message.id is None:
        message = message.model_copy(update={"id": uuid.uuid5(KAFKA_ORIGIN_NAMESPACE, origin)})
    return message


async def check(message: IntakeMessage) -> None:
    pool = await resources.db()
    if message.tenant_id not in _known_tenants:
        if not await tenants.tenant_exists(pool, message.tenant_id):
            raise Rejected(f"unknown tenant {message.tenant_id}")
        _known_tenants.add(message.tenant_id)
    try:
        message = await resolve(pool, message.tenant_id, message)
    except Unresolvable as exc:
        if await notifications.exists(pool, message.tenant_id, message.id):
            # Stored earlier (a replay, say), then its template went away: the notification
            # is known, so it fails with the reason rather than vanish into a DLQ.
            known = Notification(**message.model_dump(exclude={"v"}))
            event = DeliveryEvent.about(known, Status.FAILED, reason=str(exc))
            await enqueue(delivery_events_topic, str(known.id).encode(), event.to_bytes())
            return
        raise Rejected(f"invalid intake message: {exc}") from None
    await enqueue(
        accepted_topics.for_priority(message.priority), accepted_key(message), message.to_bytes()
    )


@lane_agents(intake_topics, "intake")
async def intake(stream: faust.StreamT) -> None:
    async for event in stream.events():
        origin = f"{event.message.topic}:{event.message.partition}:{event.message.offset}"
        with tracing.consuming(event, "intake"):
            try:
                message = parse(event.value, origin)
                await through_outages(lambda message=message: check(message), f"intake {origin}")
            except Rejected as exc:
                await dead_letter(_letter(event, str(exc)))
            except Exception as exc:
                logger.exception("intake failed on %s", origin)
                await dead_letter(_letter(event, f"internal error: {exc!r}"))


def _tenant_hint(raw: bytes | None) -> uuid.UUID | None:
    """The tenant a rejected message claims, when it says, so its DLQ entry is scoped."""
    try:
        return uuid.UUID(str(json.loads(raw or b"")["tenant_id"]))
    except (ValueError, TypeError, KeyError):
        return None


def _letter(event: faust.EventT, reason: str) -> DeadLetter:
    return letter_for(event, reason, tenant_id=_tenant_hint(event.value))
