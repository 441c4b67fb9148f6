"""Receipts kept while Kafka was away are published oldest first, each once, and stay kept
until a publish has succeeded."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import pytest

from notifyhub.db import receipt_outbox


async def test_kept_receipts_are_published_in_order_and_forgotten_only_once_published(
    database: asyncpg.Pool,
) -> None:
    topic = f"outbox-{uuid.uuid4().hex[:8]}.receipts"
    other = f"outbox-{uuid.uuid4().hex[:8]}.receipts"
    for n in range(3):
        await receipt_outbox.keep(database, topic, f"key-{n}".encode(), f"receipt {n}".encode())
    await receipt_outbox.keep(database, other, None, b"another deployment's")

    async def broker_down(kept: Sequence[receipt_outbox.Kept]) -> None:
        raise TimeoutError("no broker acknowledged")

    with pytest.raises(TimeoutError):
        await receipt_outbox.publish_kept(database, topic, 10, broker_down)

    published: list[list[receipt_outbox.Kept]] = []

    async def broker(kept: Sequence[receipt_outbox.Kept]) -> None:
        published.append(list(kept))

    # Nothing was lost to the failed publish; two a run, oldest first; then none left.
    assert await receipt_outbox.publish_kept(database, topic, 2, broker) == 2
    assert await receipt_outbox.publish_kept(database, topic, 2, broker) == 1
    assert await receipt_outbox.publish_kept(database, topic, 2, broker) == 0
    assert published == [
        [(b"key-0", b"receipt 0"), (b"key-1", b"receipt 1")],
        [(b"key-2", b"receipt 2")],
    ]
    # Another deployment's receipt waits for that deployment's sweep.
    assert await receipt_outbox.publish_kept(database, other, 10, broker) == 1
    assert published[-1] == [(None, b"another deployment's")]
