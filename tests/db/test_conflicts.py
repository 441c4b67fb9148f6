"""A batch that PostgreSQL rolls back to break a deadlock is run again, not lost."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from notifyhub.runtime.outages import through_outages


async def test_both_sides_of_a_deadlock_complete(database: asyncpg.Pool) -> None:
    table = f"deadlock_{uuid.uuid4().hex[:8]}"
    await database.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, n int NOT NULL)")
    await database.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
    holding = {1: asyncio.Event(), 2: asyncio.Event()}
    runs = {1: 0, 2: 0}

    async def update_both(first: int, second: int) -> None:
        """Lock ``first``, wait until the other side holds ``second``, then update it."""
        runs[first] += 1
        async with database.acquire() as conn, conn.transaction():
            await conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = $1", first)
            holding[first].set()
            await holding[second].wait()
            await conn.execute(f"UPDATE {table} SET n = n + 1 WHERE id = $1", second)

    try:
        await asyncio.wait_for(
            asyncio.gather(
                through_outages(lambda: update_both(1, 2), "batch one"),
                through_outages(lambda: update_both(2, 1), "batch two"),
            ),
            timeout=30,
        )
        rows = await database.fetch(f"SELECT id, n FROM {table} ORDER BY id")
    finally:
        await database.execute(f"DROP TABLE {table}")

    # Each side's increments counted once: the rolled-back run left nothing behind.
    assert [(r["id"], r["n"]) for r in rows] == [(1, 2), (2, 2)]
    assert sorted(runs.values()) == [1, 2], "one side was rolled back and run again"
