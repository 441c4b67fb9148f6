"""Apply the ordered SQL files in ``notifyhub/migrations`` exactly once each.

Each file runs in its own transaction and is recorded with its checksum in
``schema_migrations``. A session-level advisory lock makes two processes that
start at once take turns; the second finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

import asyncpg

logger = logging.getLogger(__name__)

# Any constant works as long as nothing else in the database uses it; this one
# spells "notifyhub" in the low bytes so it is recognisable in pg_locks.
MIGRATION_LOCK_ID = 0x6E6F74696679


class MigrationChanged(RuntimeError):
    """An applied migration file was edited afterwards. Add a new migration instead."""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migrations shipped in the package, in the order they apply."""
    folder = resources.files("notifyhub") / "migrations"
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [Migration(entry.name.removesuffix(".sql"), entry.read_text()) for entry in files]


async def migrate(dsn: str, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply every pending migration (of ``migrations``, by default those shipped); return
    the versions applied (empty when up to date)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            return await _apply_pending(
                conn, available_migrations() if migrations is None else migrations
            )
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()


async def _apply_pending(conn: asyncpg.Connection, migrations: Sequence[Migration]) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version text PRIMARY KEY,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    applied = {
        row["version"]: row["checksum"]
        for row in await conn.fetch("SELECT version, checksum FROM schema_migrations")
    }
    done: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise MigrationChanged(f"migration {migration.version} was changed after it was applied")
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
        logger.info("applied migration %s", migration.version)
        done.append(migration.version)
    return done
