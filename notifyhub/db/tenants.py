"""Tenants and their API keys."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

from notifyhub.content.rendering import starter_templates
from notifyhub.db import returned_row, templates

# 32 random bytes as 64 hex characters: NotifyHub's key format, which clients validate.
API_KEY_BYTES = 32


def hash_api_key(raw_key: str) -> str:
    """The stored form of an API key; the raw key is never stored."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyOwner:
    """Who an API key belongs to, and whether it may be used."""

    tenant_id: uuid.UUID
    key_id: uuid.UUID
    key_active: bool
    tenant_active: bool


async def create_tenant(pool: asyncpg.Pool, name: str) -> asyncpg.Record:
    """Create a tenant with its own copies of the starter templates (which it may then edit)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "INSERT INTO tenants (id, name) VALUES ($1, $2) "
            "RETURNING id, name, is_active, created_at, updated_at",
            uuid.uuid4(),
            name,
        )
        tenant = returned_row(row)
        for starter in starter_templates():
            await templates.create(
                conn,
                tenant["id"],
                starter.name,
                starter.channel,
                starter.subject_template,
                starter.body_template,
                starter.metadata,
            )
        return tenant


async def create_api_key(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, name: str
) -> tuple[asyncpg.Record, str]:
    """Create a key; return its row and the raw key, which exists only in this return value."""
    raw_key = secrets.token_hex(API_KEY_BYTES)
    row = await pool.fetchrow(
        "INSERT INTO api_keys (id, tenant_id, name, key_hash) VALUES ($1, $2, $3, $4) "
        "RETURNING id, tenant_id, name, is_active, created_at",
        uuid.uuid4(),
        tenant_id,
        name,
        hash_api_key(raw_key),
    )
    return returned_row(row), raw_key


async def find_api_key_owner(pool: asyncpg.Pool, raw_key: str) -> ApiKeyOwner | None:
    """Look a key up by its hash. The equality runs in the database on hashes, so
    the raw key's bytes never take part in a timing-sensitive comparison."""
    row = await pool.fetchrow(
        "SELECT k.id AS key_id, k.tenant_id, k.is_active AS key_active, "
        "t.is_active AS tenant_active "
        "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = $1",
        hash_api_key(raw_key),
    )
    if row is None:
        return None
    return ApiKeyOwner(row["tenant_id"], row["key_id"], row["key_active"], row["tenant_active"])


async def set_tenant_active(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, active: bool
) -> asyncpg.Record | None:
    """Activate or deactivate a tenant (its keys with it); None when there is no such tenant."""
    return await pool.fetchrow(
        "UPDATE tenants SET is_active = $2, updated_at = now() WHERE id = $1 "
        "RETURNING id, name, is_active, created_at, updated_at",
        tenant_id,
        active,
    )


async def revoke_api_key(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, key_id: uuid.UUID
) -> asyncpg.Record | None:
    """Deactivate one of the tenant's keys for good (the row stays, for the record); None
    when the tenant has no such key. Revoking a revoked key changes nothing."""
    return await pool.fetchrow(
        "UPDATE api_keys SET is_active = false WHERE id = $1 AND tenant_id = $2 "
        "RETURNING id, tenant_id, name, is_active, created_at",
        key_id,
        tenant_id,
    )


async def tenant_exists(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> bool:
    return bool(await pool.fetchval("SELECT 1 FROM tenants WHERE id = $1", tenant_id))


async def existing(pool: asyncpg.Pool, tenant_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Those of the tenants that exist."""
    rows = await pool.fetch("SELECT id FROM tenants WHERE id = ANY($1::uuid[])", list(tenant_ids))
    return {row["id"] for row in rows}
