"""Which partition a key belongs to, the way NotifyHub's producer decides it.

Faust produces with aiokafka's default partitioner (murmur2, like the Java client), so
a table keyed like its topic holds, in partition N, exactly the keys that hash to N.
Sweeps over a table use this to touch only the keys of the partition being ticked:
a table may only be written for keys of the current event's partition.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

# murmur2 is pure Python in aiokafka; keys repeat across sweeps, so remember them.
PARTITION_CACHE_SIZE = 1 << 16


@lru_cache(maxsize=PARTITION_CACHE_SIZE)
def partition_of(key: bytes, partitions: int) -> int:
    hashed: int = murmur2(key)  # aiokafka is untyped; murmur2 returns an int
    return (hashed & 0x7FFFFFFF) % partitions
