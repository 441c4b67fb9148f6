"""What the receipt receivers do with a verified receipt: put it on the receipts topic (the
receipts stage applies it), or, for an SMS opt-out, change the suppression list at once."""

from __future__ import annotations

import logging

import asyncpg

from notifyhub.cores.records import Outgoing
from notifyhub.db import suppressions
from notifyhub.kafka.topics import TopicNames
from notifyhub.model.channels import Channel
from notifyhub.model.messages import ProviderReceipt
from notifyhub.model.status import Status
from notifyhub.receipts.model import Receipt
from notifyhub.services.publishing import PUBLISH_WITHIN_SECONDS, Publish, QueueUnavailable

logger = logging.getLogger(__name__)


async def publish_receipt(publish: Publish, topics: TopicNames, receipt: Receipt) -> None:
    """Put the receipt on the receipts topic, acknowledged; ``QueueUnavailable`` if Kafka
    did not take it (the provider should send it again)."""
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
    try:
        await publish(
            [Outgoing(topics.receipts, message.key, message.to_bytes())], PUBLISH_WITHIN_SECONDS
        )
    except Exception:
        logger.exception("could not put a %s receipt on the receipts topic", receipt.provider)
        raise QueueUnavailable from None


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
