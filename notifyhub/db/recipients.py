"""What a tenant knows about its recipients: preferences, device tokens and profiles."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from notifyhub.db import returned_row
from notifyhub.model.channels import Channel

PREFERENCE_COLUMNS = (
    "id, user_id, channel, enabled, quiet_hours_start, quiet_hours_end, frequency_cap, "
    "frequency_window_minutes, timezone, created_at, updated_at"
)
DEVICE_TOKEN_COLUMNS = "id, user_id, token, platform, is_active, created_at, updated_at"
PROFILE_COLUMNS = "user_id, email, phone, locale, timezone, created_at, updated_at"


async def preferences(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"SELECT {PREFERENCE_COLUMNS} FROM preferences WHERE tenant_id = $1 AND user_id = $2 "
        "AND category = '' ORDER BY channel",
        tenant_id,
        user_id,
    )


async def put_preference(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, channel: Channel, values: dict[str, Any]
) -> asyncpg.Record:
    row = await pool.fetchrow(
        f"""INSERT INTO preferences (id, tenant_id, user_id, channel, enabled, quiet_hours_start,
                quiet_hours_end, frequency_cap, frequency_window_minutes, timezone)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
            ON CONFLICT (tenant_id, user_id, channel, category) DO UPDATE SET
                enabled = EXCLUDED.enabled, quiet_hours_start = EXCLUDED.quiet_hours_start,
                quiet_hours_end = EXCLUDED.quiet_hours_end, frequency_cap = EXCLUDED.frequency_cap,
                frequency_window_minutes = EXCLUDED.frequency_window_minutes,
                timezone = EXCLUDED.timezone, updated_at = now()
            RETURNING {PREFERENCE_COLUMNS}""",
        uuid.uuid4(),
        tenant_id,
        user_id,
        channel.value,
        values["enabled"],
        values["quiet_hours_start"],
        values["quiet_hours_end"],
        values["frequency_cap"],
        values["frequency_window_minutes"],
        values["timezone"],
    )
    return returned_row(row)


async def delete_preference(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, channel: Channel
) -> None:
    await pool.execute(
        "DELETE FROM preferences WHERE tenant_id = $1 AND user_id = $2 AND channel = $3 "
        "AND category = ''",
        tenant_id,
        user_id,
        channel.value,
    )


CATEGORY_PREFERENCE_COLUMNS = "user_id, channel, category, enabled, created_at, updated_at"


async def category_preferences(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, channel: Channel
) -> list[asyncpg.Record]:
    """The recipient's preferences for categories of one channel (those set)."""
    return await pool.fetch(
        f"SELECT {CATEGORY_PREFERENCE_COLUMNS} FROM preferences "
        "WHERE tenant_id = $1 AND user_id = $2 AND channel = $3 AND category <> '' ORDER BY category",
        tenant_id,
        user_id,
        channel.value,
    )


async def put_category_preference(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    user_id: str,
    channel: Channel,
    category: str,
    enabled: bool,
) -> asyncpg.Record:
    """Turn one category of a channel on or off for the recipient."""
    row = await pool.fetchrow(
        f"""INSERT INTO preferences (id, tenant_id, user_id, channel, category, enabled)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id, user_id, channel, category) DO UPDATE SET
                enabled = EXCLUDED.enabled, updated_at = now()
            RETURNING {CATEGORY_PREFERENCE_COLUMNS}""",
        uuid.uuid4(),
        tenant_id,
        user_id,
        channel.value,
        category,
        enabled,
    )
    return returned_row(row)


async def delete_category_preference(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, channel: Channel, category: str
) -> None:
    await pool.execute(
        "DELETE FROM preferences WHERE tenant_id = $1 AND user_id = $2 AND channel = $3 "
        "AND category = $4",
        tenant_id,
        user_id,
        channel.value,
        category,
    )


async def turn_channel_off(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, channel: Channel
) -> asyncpg.Record:
    """The recipient's channel preference with ``enabled`` off, the rest as it was (an
    unsubscribe link without a category)."""
    row = await pool.fetchrow(
        f"""INSERT INTO preferences (id, tenant_id, user_id, channel, enabled)
            VALUES ($1, $2, $3, $4, false)
            ON CONFLICT (tenant_id, user_id, channel, category) DO UPDATE SET
                enabled = false, updated_at = now()
            RETURNING {PREFERENCE_COLUMNS}""",
        uuid.uuid4(),
        tenant_id,
        user_id,
        channel.value,
    )
    return returned_row(row)


async def register_device_token(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, token: str, platform: str
) -> asyncpg.Record:
    """Upsert by (tenant, token): a token moves to its latest user and is active again."""
    row = await pool.fetchrow(
        f"""INSERT INTO device_tokens (id, tenant_id, user_id, token, platform)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (tenant_id, token) DO UPDATE SET user_id = EXCLUDED.user_id,
                platform = EXCLUDED.platform, is_active = true, updated_at = now()
            RETURNING {DEVICE_TOKEN_COLUMNS}""",
        uuid.uuid4(),
        tenant_id,
        user_id,
        token,
        platform,
    )
    return returned_row(row)


async def active_device_tokens(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str) -> list[str]:
    """The recipient's active push tokens, oldest registration first."""
    rows = await pool.fetch(
        "SELECT token FROM device_tokens WHERE tenant_id = $1 AND user_id = $2 AND is_active "
        "ORDER BY created_at, token",
        tenant_id,
        user_id,
    )
    return [row["token"] for row in rows]


async def deactivate_device_token(pool: asyncpg.Pool, tenant_id: uuid.UUID, token: str) -> bool:
    status = await pool.execute(
        "UPDATE device_tokens SET is_active = false, updated_at = now() "
        "WHERE tenant_id = $1 AND token = $2 AND is_active",
        tenant_id,
        token,
    )
    return status.endswith(" 1")


async def profile(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {PROFILE_COLUMNS} FROM recipient_profiles WHERE tenant_id = $1 AND user_id = $2",
        tenant_id,
        user_id,
    )


async def profile_timezone(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str) -> str | None:
    timezone: str | None = await pool.fetchval(
        "SELECT timezone FROM recipient_profiles WHERE tenant_id = $1 AND user_id = $2",
        tenant_id,
        user_id,
    )
    return timezone


async def put_profile(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, values: dict[str, Any]
) -> asyncpg.Record:
    row = await pool.fetchrow(
        f"""INSERT INTO recipient_profiles (tenant_id, user_id, email, phone, locale, timezone)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (tenant_id, user_id) DO UPDATE SET email = EXCLUDED.email,
                phone = EXCLUDED.phone, locale = EXCLUDED.locale, timezone = EXCLUDED.timezone,
                updated_at = now()
            RETURNING {PROFILE_COLUMNS}""",
        tenant_id,
        user_id,
        values.get("email"),
        values.get("phone"),
        values.get("locale"),
        values.get("timezone"),
    )
    return returned_row(row)


async def delete_profile(pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str) -> bool:
    status = await pool.execute(
        "DELETE FROM recipient_profiles WHERE tenant_id = $1 AND user_id = $2", tenant_id, user_id
    )
    return status.endswith(" 1")


async def address_for(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, user_id: str, channel: Channel
) -> str | None:
    """The address a profile gives for an addressed channel (email → email, sms → phone)."""
    column = {Channel.EMAIL: "email", Channel.SMS: "phone"}.get(channel)
    if column is None:
        return None
    address: str | None = await pool.fetchval(
        f"SELECT {column} FROM recipient_profiles WHERE tenant_id = $1 AND user_id = $2",
        tenant_id,
        user_id,
    )
    return address
