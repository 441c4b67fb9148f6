"""Putting what the HTTP API accepted on Kafka, and what it means when Kafka does not take it.

The views are given nothing but a ``Publish`` (the app's ``publish_all``): a service puts
its records through it and waits for the brokers' acknowledgement, so a 2xx answer means
the records are in Kafka.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from notifyhub.cores.records import Outgoing

# How long a request waits for Kafka to acknowledge its records; then it is refused (503)
# or, when its write is stored already, answered with the outage.
PUBLISH_WITHIN_SECONDS = 10.0

# Hand records to Kafka and wait, at most this many seconds, until every one is acknowledged.
Publish = Callable[[Sequence[Outgoing], float], Awaitable[None]]


class QueueUnavailable(Exception):
    """Kafka did not acknowledge the records in time: nothing was accepted."""
