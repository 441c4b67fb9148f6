"""Migrations against a real PostgreSQL: once each, in order, safe when run concurrently."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from notifyhub.db.migrate import MigrationChanged, available_migrations, migrate

pytestmark = pytest.mark.stack


async def test_concurrent_migrations_apply_each_file_once(empty_database: str) -> None:
    results = await asyncio.gather(*(migrate(empty_database) for _ in range(3)))

    versions = [m.version for m in available_migrations()]
    assert sorted(results, key=len, reverse=True) == [versions, [], []]
    conn = await asyncpg.connect(empty_database)
    try:
        applied = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        assert applied == versions
        assert await conn.fetchval("SELECT count(*) FROM notifications") == 0
    finally:
        await conn.close()


async def test_rerunning_migrations_is_a_no_op(empty_database: str) -> None:
    await migrate(empty_database)
    assert await migrate(empty_database) == []


async def test_an_applied_migration_that_was_edited_is_refused(empty_database: str) -> None:
    await migrate(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited'")
    finally:
        await conn.close()
    with pytest.raises(MigrationChanged):
        await migrate(empty_database)


async def test_status_rank_in_sql_matches_the_lifecycle(database: asyncpg.Pool) -> None:
    from notifyhub.model.status import FINAL_STATUSES, HELD_STATUSES, RECEIPT_STATUSES, Status

    ranks = {s: await database.fetchval("SELECT notification_status_rank($1)", s.value) for s in Status}
    assert all(rank >= 0 for rank in ranks.values())
    # Final: the pipeline sends nothing more; from sent on, only receipts move a status.
    assert {s for s, r in ranks.items() if r >= ranks[Status.SENT]} == FINAL_STATUSES
    assert ranks[Status.PENDING] < ranks[Status.QUEUED] < ranks[Status.PROCESSING] < ranks[Status.SENT]
    # A receipt moves sent on; a complaint comes after the delivery it complains of.
    assert all(ranks[s] > ranks[Status.SENT] for s in RECEIPT_STATUSES)
    assert ranks[Status.COMPLAINED] > ranks[Status.DELIVERED]
    assert {ranks[s] for s in HELD_STATUSES} == {ranks[Status.QUEUED] + 1}
    assert ranks[Status.SCHEDULED] < ranks[Status.PROCESSING]
