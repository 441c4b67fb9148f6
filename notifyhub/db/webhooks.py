"""Webhook endpoints (secrets stored encrypted) and the log of delivery attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

ENDPOINT_COLUMNS = "id, tenant_id, url, events, is_active, created_at, updated_at"


async def create_endpoint(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    url: str,
    secret_ciphertext: bytes,
    events: Sequence[str],
    limit: int,
) -> asyncpg.Record | None:
    """The new endpoint, or ``None`` when the tenant already has ``limit`` of them."""
    async with pool.acquire() as conn, conn.transaction():
        # Creations for one tenant take turns on its row, so two cannot both pass the count.
        # (NO KEY UPDATE leaves the row free for the key-share locks of inserts elsewhere.)
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE", tenant_id)
        count = await conn.fetchval(
            "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1", tenant_id
        )
        if count >= limit:
            return None
        return await conn.fetchrow(
            f"""INSERT INTO webhook_endpoints (id, tenant_id, url, secret_ciphertext, events)
                VALUES ($1, $2, $3, $4, $5) RETURNING {ENDPOINT_COLUMNS}""",
            uuid.uuid4(),
            tenant_id,
            url,
            secret_ciphertext,
            sorted(set(events)),
        )


async def page(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    """One page of the tenant's endpoints, newest first, and how many it has in all."""
    rows = await pool.fetch(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 "
        "ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        tenant_id,
        limit,
        offset,
    )
    total = await pool.fetchval("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1", tenant_id)
    return list(rows), total


async def endpoint(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        endpoint_id,
    )


async def update_endpoint(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Change the given columns (url, events, is_active, secret_ciphertext)."""
    allowed = {"url", "events", "is_active", "secret_ciphertext"}
    columns = [name for name in changes if name in allowed]
    assignments = ", ".join(f"{name} = ${n}" for n, name in enumerate(columns, start=3))
    return await pool.fetchrow(
        f"UPDATE webhook_endpoints SET {assignments}{', ' if columns else ''}updated_at = now() "
        f"WHERE tenant_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}",
        tenant_id,
        endpoint_id,
        *(changes[name] for name in columns),
    )


async def delete_endpoint(pool: asyncpg.Pool, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    status = await pool.execute(
        "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2", tenant_id, endpoint_id
    )
    return status.endswith(" 1")


async def subscribed(
    pool: asyncpg.Pool, wanted: Sequence[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], list[uuid.UUID]]:
    """For each (tenant, event), the active endpoints subscribed to it."""
    rows = await pool.fetch(
        """SELECT w.tenant_id, w.event, e.id
             FROM unnest($1::uuid[], $2::text[]) AS w (tenant_id, event)
             JOIN webhook_endpoints e ON e.tenant_id = w.tenant_id AND e.is_active
                                     AND w.event = ANY(e.events)""",
        [tenant for tenant, _ in wanted],
        [event for _, event in wanted],
    )
    found: dict[tuple[uuid.UUID, str], list[uuid.UUID]] = {}
    for row in rows:
        found.setdefault((row["tenant_id"], row["event"]), []).append(row["id"])
    return found


@dataclass(frozen=True)
class Target:
    """Where and how to deliver: the endpoint's URL and (encrypted) secret."""

    url: str
    secret_ciphertext: bytes


async def targets(pool: asyncpg.Pool, endpoint_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Target]:
    """The active endpoints among these ids."""
    rows = await pool.fetch(
        "SELECT id, url, secret_ciphertext FROM webhook_endpoints "
        "WHERE id = ANY($1::uuid[]) AND is_active",
        list(endpoint_ids),
    )
    return {row["id"]: Target(row["url"], row["secret_ciphertext"]) for row in rows}


@dataclass(frozen=True)
class Attempt:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    tenant_id: uuid.UUID
    event: str
    attempt: int
    status_code: int | None
    error: str | None
    succeeded: bool
    duration_ms: float
    # The URL or its address was refused (private, loopback, ...): no retry can succeed.
    # Not stored: the error says so.
    refused: bool = False


async def record_attempts(pool: asyncpg.Pool, attempts: Sequence[Attempt]) -> None:
    await pool.executemany(
        """INSERT INTO webhook_deliveries (delivery_id, endpoint_id, tenant_id, event, attempt,
               status_code, error, succeeded, duration_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        [
            (
                a.delivery_id,
                a.endpoint_id,
                a.tenant_id,
                a.event,
                a.attempt,
                a.status_code,
                a.error,
                a.succeeded,
                a.duration_ms,
            )
            for a in attempts
        ],
    )


async def attempts_of(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, limit: int
) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT delivery_id, event, attempt, status_code, error, succeeded, duration_ms, "
            "attempted_at FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 "
            "ORDER BY attempted_at DESC, id DESC LIMIT $3",
            tenant_id,
            endpoint_id,
            limit,
        )
    )
