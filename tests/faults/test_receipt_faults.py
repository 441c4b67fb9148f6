"""A provider receipt that arrives while Kafka is down is not lost: Twilio never sends a
status callback twice, so the receiver keeps the receipt in PostgreSQL, answers Twilio,
and the sweep puts it on the receipts topic once Kafka is back."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.api import eventually, metric, wait_for_status
from tests.support.faults import FaultKit
from tests.support.receipts import (
    PUBLIC_URL,
    TWILIO_STATUS_PATH,
    sent_sms,
    status_fields,
    twilio_callback,
)
from tests.support.servers.twilio import FakeTwilio

pytestmark = pytest.mark.faults


async def test_a_twilio_receipt_that_arrives_while_kafka_is_down_is_applied_after(
    kit: FaultKit, twilio: FakeTwilio
) -> None:
    [worker] = await kit.start_workers(
        1,
        **twilio.env(),
        NOTIFYHUB_SINK_CHANNELS="",
        NOTIFYHUB_SMS_PROVIDERS="twilio",
        NOTIFYHUB_PUBLIC_URL=PUBLIC_URL,
        NOTIFYHUB_SWEEP_INTERVAL_SECONDS="1",
    )
    notification_id, sid = await sent_sms(kit.http, worker, kit.tenant, twilio)
    await asyncio.to_thread(kit.stack.stop, "kafka")
    try:
        delivered = status_fields(sid, "delivered")
        assert await twilio_callback(kit.http, worker, twilio, TWILIO_STATUS_PATH, delivered) == 204
        kept = await metric(kit.http, worker, "notifyhub_receipt_outbox_total", action="kept")
        assert kept == 1, "the receipt went to PostgreSQL, not Kafka"
        status = await wait_for_status(kit.http, worker, kit.tenant, notification_id)
        assert status["status"] == "sent"
    finally:
        await asyncio.to_thread(kit.stack.start, "kafka")
    await wait_for_status(kit.http, worker, kit.tenant, notification_id, "delivered")

    async def published() -> float | None:
        return await metric(kit.http, worker, "notifyhub_receipt_outbox_total", action="published")

    assert await eventually(published, "the sweep published the kept receipt") == 1
