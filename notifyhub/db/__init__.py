"""PostgreSQL, the system of record: the connection pool and the queries by domain."""

from __future__ import annotations

import asyncpg

from notifyhub.runtime.settings import Settings

# Enough for the HTTP API and the batching status writer of one worker; PostgreSQL's
# own limit (100 by default) has to cover every worker's pool.
POOL_MAX_SIZE = 10
# A query that takes longer than this is treated as PostgreSQL being unavailable.
COMMAND_TIMEOUT_SECONDS = 10.0


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Nothing to reset: our queries set no session state (no LISTEN, no SET, no advisory
    locks; migrations take theirs on a connection of their own). asyncpg still rolls back
    a transaction left open; its default reset query would cost a round trip per release."""


async def create_pool(settings: Settings) -> asyncpg.Pool:
    """A connection pool to the configured database."""
    return await asyncpg.create_pool(
        settings.database_url.get_secret_value(),
        min_size=1,
        max_size=POOL_MAX_SIZE,
        command_timeout=COMMAND_TIMEOUT_SECONDS,
        reset=_keep_session,
    )
