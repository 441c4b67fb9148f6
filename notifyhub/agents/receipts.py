"""Receipts: what providers reported after accepting a message, applied in batches.

The receivers (``web/receipts.py``) verify a receipt and put it on the receipts topic;
this stage finds the notification each belongs to (by the provider's message id, from
the delivery log), and hands the status to the delivery events stage, which writes it
forward only (so a late or repeated receipt changes nothing) and fires the webhooks.
Each receipt's event id is derived from the provider's own id for it: a receipt received
twice is logged and reported once. Hard bounces and complaints put the address on the
tenant's suppression list.

A receipt can arrive before the send that made the message has recorded its id (a
status callback within milliseconds): it is held and looked up again, with backoff, up
to ``LOOKUPS`` times, then logged and dropped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import faust

from notifyhub.agents.kit import batches, dead_letters, guarded, parsed
from notifyhub.app import app, emit, receipts_topic, resources, topics
from notifyhub.cores.records import Outgoing, event_record
from notifyhub.db import notifications, suppressions
from notifyhub.model.messages import DeliveryEvent, Destination, HoldRequest, ProviderReceipt
from notifyhub.observability.metrics import RECEIPTS
from notifyhub.runtime import clock
from notifyhub.runtime.outages import through_outages

logger = logging.getLogger(__name__)

RECEIPT_EVENT_NAMESPACE = uuid.UUID("9d1e5c3a-7b2f-4f0e-8a66-726563656970")
# Lookups of a receipt whose message is unknown: 1, 2, 4, 8, 16 s apart (31 s in all).
LOOKUPS = 6
FIRST_WAIT_SECONDS = 1.0


def _retry(receipt: ProviderReceipt, now: float) -> Outgoing:
    later = receipt.model_copy(update={"attempt": receipt.attempt + 1})
    wait = FIRST_WAIT_SECONDS * 2 ** (receipt.attempt - 1)
    request = HoldRequest(receipt=later, release_at=now + wait, destination=Destination.RECEIPT)
    return Outgoing(topics.held, receipt.key, request.to_bytes())


async def _apply(events: Sequence[faust.EventT[bytes]]) -> None:
    good, letters = parsed(events, ProviderReceipt, "provider receipt")
    pool = await resources.db()
    wanted = list({(r.provider, r.provider_message_id) for _, r in good})
    found = await through_outages(
        lambda: notifications.by_provider_message(pool, wanted), "receipts: find their messages"
    )
    records: list[Outgoing] = []
    suppressed: list[suppressions.Suppression] = []
    now = clock.now()
    for _, receipt in good:
        sent = found.get((receipt.provider, receipt.provider_message_id))
        if sent is None:
            if receipt.attempt < LOOKUPS:
                records.append(_retry(receipt, now))
                RECEIPTS.labels(receipt.provider, "waiting").inc()
            else:
                logger.warning(
                    "%s receipt %s names message %s, which no notification was sent as; dropped",
                    receipt.provider,
                    receipt.receipt_id,
                    receipt.provider_message_id,
                )
                RECEIPTS.labels(receipt.provider, "unmatched").inc()
            continue
        RECEIPTS.labels(receipt.provider, receipt.status.value).inc()
        event = DeliveryEvent(
            event_id=uuid.uuid5(RECEIPT_EVENT_NAMESPACE, f"{receipt.provider}:{receipt.receipt_id}"),
            notification_id=sent.notification_id,
            tenant_id=sent.tenant_id,
            channel=sent.channel,
            recipient_id=sent.recipient_id,
            status=receipt.status,
            occurred_at=receipt.occurred_at,
            provider=receipt.provider,
            provider_message_id=receipt.provider_message_id,
            reason=receipt.reason,
        )
        records.append(event_record(topics.delivery_events, event))
        suppressed += [
            suppressions.Suppression(
                sent.tenant_id,
                sent.channel,
                address,
                receipt.suppress_reason or "receipt",
                receipt.provider,
            )
            for address in receipt.suppress
        ]
    if suppressed:
        await through_outages(
            lambda: suppressions.add_many(pool, suppressed), "receipts: suppress addresses"
        )
    await dead_letters(letters)
    await emit(records)


@app.agent(receipts_topic, name="receipts")
async def receipts(stream: faust.StreamT[bytes]) -> None:
    async for events in batches(stream):
        await guarded(events, _apply, "receipts")
