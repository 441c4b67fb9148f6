"""PostgreSQL, the system of record: the connection pool and the queries by domain."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from notifyhub.runtime.settings import Settings

# A connection to query on: one of its own, or one acquired from a pool (asyncpg hands
# those out as a proxy, which is not a subclass of Connection).
AnyConnection: TypeAlias = "asyncpg.Connection | PoolConnectionProxy"
# What a query that needs no transaction of its own runs on: the pool or a connection.
PoolOrConnection: TypeAlias = "asyncpg.Pool | AnyConnection"

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


async def ping(pool: asyncpg.Pool) -> None:
    """One round trip, for health checks: raises when PostgreSQL does not answer."""
    await pool.fetchval("SELECT 1")


def returned_row(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of a statement that always returns one (an upsert, or an ``UPDATE`` of a row
    the transaction has locked) with its RETURNING clause."""
    if row is None:
        raise RuntimeError("the statement returned no row")
    return row
