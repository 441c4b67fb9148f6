"""What the receipt receivers do with a verified receipt: put it on the receipts topic (the
receipts stage applies it), or, for an SMS opt-out, change the suppression list at once.

A receipt Kafka does not take in a few seconds is kept in PostgreSQL (``db.receipt_outbox``)
and the sweep publishes it later: Twilio never sends a status callback twice, and the
provider is waiting for its answer (about 15 s) meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import asyncpg

from notifyhub.cores.records import Outgoing
from notifyhub.db import receipt_outbox, suppressions
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import ProviderReceipt
from notifyhub.model.status import Status
from notifyhub.observability.metrics import RECEIPT_OUTBOX
from notifyhub.receipts.model import Receipt
from notifyhub.services.publishing import Publish, QueueUnavailable

logger = logging.getLogger(__name__)

# Then the receipt is kept in PostgreSQL instead, well within the provider's own wait.
RECEIPT_PUBLISH_WITHIN_SECONDS = 5.0


async def publish_receipt(
    publish: Publish,
    topics: TopicNames,
    receipt: Receipt,
    database: Callable[[], Awaitable[asyncpg.Pool]],
) -> None:
    """Put the receipt on the receipts topic, acknowledged, or else keep it in PostgreSQL
    for the sweep; ``QueueUnavailable`` if neither took it (the provider should send it
    again)."""
    message = ProviderReceipt(
        receipt_id=receipt.receipt_id,
        provider=receipt.provider,
        provider_message_id=receipt.provider_message_id,
        status=Status(receipt.outcome.value),
        occurred_at=receipt.occurred_at,
        reason=receipt.reason,
        suppress=list(receipt.suppress),
        suppress_reason=receipt.suppress_reason,
    )
    record = Outgoing(topics.receipts, message.key, message.to_bytes())
    try:
        await publish([record], RECEIPT_PUBLISH_WITHIN_SECONDS)
        return
    except Exception as exc:
        logger.warning(
            "Kafka did not take a %s receipt (%r); keeping it in PostgreSQL for the sweep",
            receipt.provider,
            exc,
        )
    try:
        await receipt_outbox.keep(await database(), record.topic, record.key, record.value)
    except Exception:
        logger.exception("could not keep a %s receipt in PostgreSQL either", receipt.provider)
        raise QueueUnavailable from None
    RECEIPT_OUTBOX.labels(action="kept").inc()


async def apply_sms_opt_out(pool: asyncpg.Pool, number: str, opted_out: bool) -> None:
    """STOP (``opted_out``) suppresses the number for every tenant, since the sender is
    shared; START lifts it."""
    if opted_out:
        await suppressions.add_many(
            pool, [suppressions.Suppression(None, Channel.SMS, number, "texted STOP", "sms-stop")]
        )
    else:
        await suppressions.remove(pool, None, Channel.SMS, number)
    logger.info("SMS %s to the shared sender: %s", "opt-out" if opted_out else "opt-in", number)
