"""The held table without Faust: a ``HeldTable`` over a dict, for its unit tests."""

from __future__ import annotations

from notifyhub.kafka.partitions import partition_of

# Any partition count will do: the table only needs to know which keys a tick covers.
PARTITIONS = 4
KEY = b"tenant:recipient"
PARTITION = partition_of(KEY, PARTITIONS)
