"""Each tenant's own quota on accepted notifications per second (``services.quotas``)."""

from __future__ import annotations

import uuid

import asyncpg


async def notifications_per_second(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> int | None:
    """The tenant's own rate; None when it uses the deployment's default."""
    rate: int | None = await pool.fetchval(
        "SELECT notifications_per_second FROM tenants WHERE id = $1", tenant_id
    )
    return rate


async def tenant_rate(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> tuple[bool, int | None]:
    """Whether the tenant exists, and its own rate (None: the default)."""
    row = await pool.fetchrow("SELECT notifications_per_second FROM tenants WHERE id = $1", tenant_id)
    return (row is not None, row["notifications_per_second"] if row is not None else None)


async def set_notifications_per_second(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, rate: int | None
) -> bool:
    """Set (or, with None, clear) the tenant's own rate; False for an unknown tenant."""
    status = await pool.execute(
        "UPDATE tenants SET notifications_per_second = $2, updated_at = now() WHERE id = $1",
        tenant_id,
        rate,
    )
    return status.endswith(" 1")
