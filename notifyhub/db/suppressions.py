"""Suppressed addresses: where nothing is sent any more.

A tenant's own list (hard bounces and complaints its mail met, and what it added), and a
list for every tenant (``tenant_id`` NULL): SMS numbers that texted STOP to the
deployment's shared Twilio sender, which Twilio itself refuses to text again until they
send START. The send stage's claim drops a notification to a suppressed address with the
reason (``notifications.CLAIM_FOR_SENDING``). Addresses are stored as the claim compares
them: e-mail lower-cased, SMS numbers as sent (E.164).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from notifyhub.db import PoolOrConnection
from notifyhub.model.channels import Channel

COLUMNS = "tenant_id, channel, address, reason, source, created_at"
# What may be suppressed: the channels with addresses.
SUPPRESSIBLE = (Channel.EMAIL, Channel.SMS)


def normalised(address: str) -> str:
    return address.strip().lower()


@dataclass(frozen=True)
class Suppression:
    tenant_id: uuid.UUID | None  # None: every tenant
    channel: Channel
    address: str
    reason: str
    source: str  # api, bounce, complaint, sms-stop


def as_api_dict(row: asyncpg.Record) -> dict[str, Any]:
    found = dict(row)
    found["scope"] = "tenant" if found.pop("tenant_id") is not None else "all tenants"
    return found


async def add_many(pool: PoolOrConnection, wanted: Sequence[Suppression]) -> None:
    """Suppress each address (one statement); one already suppressed keeps its first reason."""
    if not wanted:
        return
    await pool.execute(
        """INSERT INTO suppressions (tenant_id, channel, address, reason, source)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
           ON CONFLICT DO NOTHING""",
        [s.tenant_id for s in wanted],
        [s.channel.value for s in wanted],
        [normalised(s.address) for s in wanted],
        [s.reason for s in wanted],
        [s.source for s in wanted],
    )


async def add(pool: asyncpg.Pool, suppression: Suppression) -> asyncpg.Record:
    """Suppress one address of a tenant; the row (the existing one when it was already)."""
    await add_many(pool, [suppression])
    row = await pool.fetchrow(
        f"SELECT {COLUMNS} FROM suppressions WHERE tenant_id = $1 AND channel = $2 AND address = $3",
        suppression.tenant_id,
        suppression.channel.value,
        normalised(suppression.address),
    )
    assert row is not None
    return row


async def page(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, channel: Channel | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    """The addresses suppressed for the tenant (its own, then every tenant's), oldest first."""
    where = "(tenant_id = $1 OR tenant_id IS NULL) AND ($2::text IS NULL OR channel = $2)"
    channel_value = channel.value if channel else None
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM suppressions WHERE {where} "
        "ORDER BY tenant_id NULLS LAST, created_at, id LIMIT $3 OFFSET $4",
        tenant_id,
        channel_value,
        limit,
        offset,
    )
    total = await pool.fetchval(
        f"SELECT count(*) FROM suppressions WHERE {where}", tenant_id, channel_value
    )
    return list(rows), total


async def remove(
    pool: asyncpg.Pool, tenant_id: uuid.UUID | None, channel: Channel, address: str
) -> bool:
    """Send to the address again (a tenant's own entry; ``None``: the every-tenant one)."""
    status = await pool.execute(
        "DELETE FROM suppressions WHERE tenant_id IS NOT DISTINCT FROM $1 AND channel = $2 "
        "AND address = $3",
        tenant_id,
        channel.value,
        normalised(address),
    )
    return status != "DELETE 0"
