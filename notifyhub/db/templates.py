"""Templates: per tenant, versioned, soft-deleted; each with its locale variants.

``locales`` maps a language tag to a variant, ``{"subject_template": ..., "body_template":
...}``; it is stored (and versioned) with the template as one JSON object.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from notifyhub.db import PoolOrConnection
from notifyhub.model.channels import Channel

COLUMNS = (
    "id, tenant_id, name, channel, subject_template, body_template, locales, metadata, version, "
    "is_active, created_at, updated_at"
)
# What the pipeline renders of a template.
RENDERED_COLUMNS = "id, subject_template, body_template, locales"


class TooManyTemplates(Exception):
    """The tenant already has as many live templates as it may; one must be deleted first."""


def as_api_dict(row: asyncpg.Record) -> dict[str, Any]:
    """A template (or a version of one) as the API answers it, its JSON columns decoded."""
    template = dict(row)
    template["metadata"] = json.loads(template["metadata"])
    template["locales"] = json.loads(template["locales"])
    return template


async def create(
    conn: PoolOrConnection,
    tenant_id: uuid.UUID,
    name: str,
    channel: Channel,
    subject_template: str | None,
    body_template: str,
    metadata: dict[str, Any],
    locales: dict[str, dict[str, str | None]] | None = None,
) -> asyncpg.Record | None:
    """Create a template (version 1); ``None`` when the tenant has a live one of that name."""
    row = await conn.fetchrow(
        f"""INSERT INTO templates (id, tenant_id, name, channel, subject_template, body_template,
                metadata, locales)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (tenant_id, channel, name) WHERE deleted_at IS NULL DO NOTHING
            RETURNING {COLUMNS}""",
        uuid.uuid4(),
        tenant_id,
        name,
        channel.value,
        subject_template,
        body_template,
        json.dumps(metadata),
        json.dumps(locales or {}),
    )
    if row is not None:
        await _record_version(conn, row)
    return row


async def create_capped(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    name: str,
    channel: Channel,
    subject_template: str | None,
    body_template: str,
    metadata: dict[str, Any],
    cap: int,
    locales: dict[str, dict[str, str | None]] | None = None,
) -> asyncpg.Record | None:
    """``create``, unless the tenant has ``cap`` live templates: then TooManyTemplates.

    The tenant's row is locked first, so two creates at once cannot both take the last place.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tenant_id)
        live = await conn.fetchval(
            "SELECT count(*) FROM templates WHERE tenant_id = $1 AND deleted_at IS NULL", tenant_id
        )
        if live >= cap:
            raise TooManyTemplates(f"the tenant has {live} templates, the most it may have is {cap}")
        return await create(
            conn, tenant_id, name, channel, subject_template, body_template, metadata, locales
        )


async def _record_version(conn: PoolOrConnection, row: asyncpg.Record) -> None:
    await conn.execute(
        "INSERT INTO template_versions (template_id, version, subject_template, body_template, "
        "metadata, locales) VALUES ($1, $2, $3, $4, $5, $6)",
        row["id"],
        row["version"],
        row["subject_template"],
        row["body_template"],
        row["metadata"],
        row["locales"],
    )


async def get(pool: asyncpg.Pool, tenant_id: uuid.UUID, template_id: uuid.UUID) -> asyncpg.Record | None:
    return await pool.fetchrow(
        f"SELECT {COLUMNS} FROM templates WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL",
        tenant_id,
        template_id,
    )


async def find(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    channel: Channel,
    id_or_name: str,
    recipient_id: str | None = None,
) -> asyncpg.Record | None:
    """A live, active template of the channel named by its id or by its name.

    With ``recipient_id``, the row also has ``recipient_locale``: the locale of that
    recipient's profile (NULL without one), read in the same statement, since a
    notification that names a template needs both.
    """
    try:
        template_id: uuid.UUID | None = uuid.UUID(id_or_name)
    except ValueError:
        template_id = None
    return await pool.fetchrow(
        f"""SELECT {COLUMNS},
                   (SELECT p.locale FROM recipient_profiles p
                     WHERE p.tenant_id = $1 AND p.user_id = $5) AS recipient_locale
              FROM templates
             WHERE tenant_id = $1 AND channel = $2 AND deleted_at IS NULL AND is_active
               AND (id = $3 OR name = $4)""",
        tenant_id,
        channel.value,
        template_id,
        id_or_name,
        recipient_id,
    )


async def page(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, channel: Channel | None, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    where = "tenant_id = $1 AND deleted_at IS NULL AND ($2::text IS NULL OR channel = $2)"
    channel_value = channel.value if channel else None
    rows = await pool.fetch(
        f"SELECT {COLUMNS} FROM templates WHERE {where} ORDER BY created_at, id LIMIT $3 OFFSET $4",
        tenant_id,
        channel_value,
        limit,
        offset,
    )
    total = await pool.fetchval(
        f"SELECT count(*) FROM templates WHERE {where}", tenant_id, channel_value
    )
    return rows, total


async def update(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, template_id: uuid.UUID, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Apply a partial update and bump the version; ``None`` if the template is not live.

    Raises ``asyncpg.UniqueViolationError`` when a rename collides with a live template.
    """
    allowed = ("name", "subject_template", "body_template", "locales", "metadata", "is_active")
    assignments, values = [], []
    for column in allowed:
        if column in changes:
            value = changes[column]
            values.append(json.dumps(value) if column in ("metadata", "locales") else value)
            assignments.append(f"{column} = ${len(values) + 2}")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE templates SET {
                ", ".join([*assignments, "version = version + 1", "updated_at = now()"])
            }
                 WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL
                 RETURNING {COLUMNS}""",
            tenant_id,
            template_id,
            *values,
        )
        if row is not None:
            await _record_version(conn, row)
        return row


async def soft_delete(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, template_id: uuid.UUID
) -> asyncpg.Record | None:
    """Delete a live template (it no longer renders); the template as deleted, else ``None``."""
    return await pool.fetchrow(
        "UPDATE templates SET deleted_at = now(), updated_at = now() "
        f"WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING {COLUMNS}",
        tenant_id,
        template_id,
    )


async def versions(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, template_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[asyncpg.Record], int]:
    """A page of the template's versions, oldest first, and how many it has."""
    rows = await pool.fetch(
        """SELECT v.version, v.subject_template, v.body_template, v.locales, v.metadata,
                  v.created_at
             FROM template_versions v JOIN templates t ON t.id = v.template_id
            WHERE t.tenant_id = $1 AND t.id = $2 AND t.deleted_at IS NULL
            ORDER BY v.version LIMIT $3 OFFSET $4""",
        tenant_id,
        template_id,
        limit,
        offset,
    )
    total = await pool.fetchval(
        "SELECT count(*) FROM template_versions WHERE template_id = $1", template_id
    )
    return rows, total


@dataclass(frozen=True)
class TemplateTexts:
    """A template's texts as the pipeline renders them: the default ones and, by locale
    tag, each variant's (a variant's subject may be missing)."""

    subject_template: str | None
    body_template: str
    locales: dict[str, tuple[str | None, str]]

    @classmethod
    def of(cls, row: asyncpg.Record) -> TemplateTexts:
        return cls(
            row["subject_template"],
            row["body_template"],
            {
                tag: (texts.get("subject_template"), texts["body_template"])
                for tag, texts in json.loads(row["locales"]).items()
            },
        )


async def for_rendering_many(
    pool: asyncpg.Pool, template_ids: set[uuid.UUID]
) -> dict[uuid.UUID, TemplateTexts]:
    """The templates as the pipeline renders them, by id; those deleted or deactivated are
    missing."""
    rows = await pool.fetch(
        f"SELECT {RENDERED_COLUMNS} FROM templates "
        "WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL AND is_active",
        list(template_ids),
    )
    return {row["id"]: TemplateTexts.of(row) for row in rows}
