"""What the held stage releases that is a new notification: a closed digest window
(``cores.digests``) and an escalation step (``cores.escalations``).

Each is stored in PostgreSQL as any accepted notification is (one statement for the
batch, with its first status and log row) and goes on to enrich; its id is derived from
the window or the step, so a release made twice (the worker died before the tick was
committed) stores and sends one. Before a step is stored, the chain's in-app message is
checked: seen or read, the chain stops instead. Order of effects: PostgreSQL, then the
records produced (by the held agent), then the acknowledgement.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Sequence

from notifyhub.app import resources, settings, topics
from notifyhub.cores import escalations
from notifyhub.cores.digests import digest_message
from notifyhub.cores.entry import entry_event, entry_records
from notifyhub.cores.intake import as_notification
from notifyhub.cores.records import Headers, Outgoing, event_record
from notifyhub.db import inbox, notifications
from notifyhub.model.messages import DeliveryEvent, IntakeMessage, Notification
from notifyhub.observability import tracing
from notifyhub.runtime.outages import through_outages
from notifyhub.services.resolve import Unresolvable, resolve
from notifyhub.tables.held import Released

logger = logging.getLogger(__name__)


def _report(event: DeliveryEvent, headers: Headers = ()) -> Outgoing:
    return event_record(topics.delivery_events, event, headers)


async def released(windows: Sequence[Released], steps: Sequence[Released], now: float) -> list[Outgoing]:
    """Store the digests of closed windows and the escalation steps due; what to produce."""
    pool = await resources.db()
    records: list[Outgoing] = []
    accepted: list[tuple[IntakeMessage, Notification, tuple[tuple[str, bytes], ...]]] = []
    for window in windows:
        assert window.digest_id is not None
        message = digest_message(window.digest_id, list(window.items))
        accepted.append(
            (message, as_notification(message), tuple(tracing.as_headers(window.trace).items()))
        )
    # Which step of which chain each stored step is, to report it on the chain.
    step_of: dict[uuid.UUID, Notification] = {}
    if steps:
        sent = [step.notification for step in steps if step.notification is not None]
        chains = [(n.tenant_id, escalations.chain_of(n)) for n in sent]
        seen = await through_outages(
            lambda: inbox.seen_or_read(pool, chains), "escalation: were the messages seen"
        )
        for step, notification in zip(steps, sent, strict=True):
            headers = tuple(tracing.as_headers(step.trace).items())
            if escalations.chain_of(notification) in seen:
                stopped = escalations.chain_event(
                    notification, "escalation_stopped", "seen or read before the next step", now
                )
                records.append(_report(stopped, headers))
                continue
            try:
                message = await through_outages(
                    functools.partial(
                        resolve, pool, notification.tenant_id, escalations.step_message(notification)
                    ),
                    "escalation: resolve the step",
                )
            except Unresolvable as exc:
                stopped = escalations.chain_event(
                    notification, "escalation_stopped", f"the next step cannot be sent: {exc}", now
                )
                records.append(_report(stopped, headers))
                continue
            step_of[message.assigned_id] = notification
            accepted.append((message, escalations.as_step(message, notification), headers))
    if not accepted:
        return records
    announced = [entry_event(n, now) for _, n, _ in accepted]
    messages = [m for m, _, _ in accepted]
    passed = await through_outages(
        lambda: notifications.store_accepted(
            pool, announced, messages, settings.idempotency_retention_seconds
        ),
        f"held: store {len(messages)} digests and escalation steps",
    )
    for (message, notification, headers), entry in zip(accepted, announced, strict=True):
        if notification.id not in passed:
            continue  # final already: a release made twice, long after the first
        records += entry_records(topics, notification, entry, headers, persisted=passed[notification.id])
        previous = step_of.get(message.assigned_id)
        if previous is not None:
            reason = escalations.step_reason(previous, notification.id)
            records.append(
                _report(
                    escalations.chain_event(previous, "escalated", reason, now, notification.id),
                    headers,
                )
            )
    return records
